// A type, not an interface: it must fit the response schemas' open object types.
export type PhoneInfo = { phoneNumber: string, purePhoneNumber: string, countryCode: string }

/** A person's login in one mini-program (or official account): WeChat's per-app openid. */
export type Identity = { appid: string, openid: string }

export interface UserRecord {
  /** Stable across the company's apps: logins with the same unionid share it. */
  user_id: string
  unionid: string | null
  nickname: string | null
  head_pic: string | null
  phone: PhoneInfo | null
  /** Every app this user has logged in from. */
  identities: Identity[]
  created_at: string
  updated_at: string
}

/** Fields a login may change; an absent field keeps what is stored. */
export interface UserPatch {
  nickname?: string
  head_pic?: string
  phone?: PhoneInfo
}

export interface UpsertResult {
  user: UserRecord
  isNew: boolean
  /** The stored phone number changed (or was set for the first time). */
  phoneChanged: boolean
}

/**
 * Users keyed by a user_id, found by identity (appid + openid) and linked by unionid: the
 * first identity with a unionid claims it, and later identities with that unionid, from any
 * app, join the same user.
 */
export interface UserStore {
  upsertUser: (identity: Identity, unionid: string | null, patch: UserPatch) => Promise<UpsertResult>
  getUser: (userId: string) => Promise<UserRecord | null>
  /** The user_id of an identity, or null when it never logged in. */
  userIdOf: (identity: Identity) => Promise<string | null>
  /** The apps the user logged in from, read without opening its sealed data (empty: no such user). */
  identitiesOf: (userId: string) => Promise<Identity[]>
  /**
   * Removes the user, its identities and its unionid link; what it was (null: no such user).
   * Never opens a sealed value: a record sealed under a key since removed is deleted all the same.
   */
  deleteUser: (userId: string) => Promise<DeletedUser | null>
  /** A record the login-api wrote for this identity before user_ids (Redis only), not yet adopted. */
  hasLegacyRecord: (identity: Identity) => Promise<boolean>
}

/** What deletion reports of a user it removed: nothing sealed, nothing personal. */
export interface DeletedUser {
  user_id: string
  identities: Identity[]
  created_at: string
}

export const samePhone = (a: PhoneInfo | null, b: PhoneInfo | undefined): boolean =>
  b === undefined || (a !== null && a.phoneNumber === b.phoneNumber && a.countryCode === b.countryCode)

/** `patch` over `cur` (or a new user); a field the patch leaves out keeps its value. */
export function merge (
  cur: UserRecord,
  identity: Identity,
  unionid: string | null,
  patch: UserPatch,
  now: string
): UserRecord {
  const user = { ...cur, identities: [...cur.identities], updated_at: now }
  if (!user.identities.some(i => i.appid === identity.appid && i.openid === identity.openid)) {
    user.identities.push(identity)
  }
  if (unionid !== null && user.unionid === null) user.unionid = unionid
  if (patch.nickname !== undefined) user.nickname = patch.nickname
  if (patch.head_pic !== undefined) user.head_pic = patch.head_pic
  if (patch.phone !== undefined) user.phone = patch.phone
  return user
}

export const blankUser = (userId: string, now: string): UserRecord => ({
  user_id: userId,
  unionid: null,
  nickname: null,
  head_pic: null,
  phone: null,
  identities: [],
  created_at: now,
  updated_at: now
})

/** Authenticated with each sealed phone number: it opens only in the record it was written for. */
export const phoneContext = (userId: string): string => `user:${userId}:phone`

/** cjson encodes an empty Lua table as {} and drops nulls set in Lua; give the record its shape back. */
export function normalise (u: UserRecord, phone: PhoneInfo | null): UserRecord {
  return {
    user_id: u.user_id,
    unionid: u.unionid ?? null,
    nickname: u.nickname ?? null,
    head_pic: u.head_pic ?? null,
    phone,
    identities: Array.isArray(u.identities) ? u.identities : [],
    created_at: u.created_at,
    updated_at: u.updated_at
  }
}
