import type { EventSink, LoginEvent } from '../login/events.js'
import type { Exchange, ExchangeStore } from '../exchanges/exchange-store.js'
import type { Identity, PhoneInfo, UserPatch, UserRecord } from './user-record.js'

export type { Identity, PhoneInfo, UserPatch, UserRecord } from './user-record.js'

export interface UpsertResult {
  user: UserRecord
  isNew: boolean
  /** The stored phone number changed (or was set for the first time). */
  phoneChanged: boolean
}

/** What rides beside a login's write (its session): taken back when the write is refused and tried again. */
export interface Beside {
  drop: () => Promise<void>
}

/**
 * A login's write of its user (or a phone update's), with what belongs to it: its events, the
 * login code's kept answer and the session. A store may carry the first two in its own write
 * (Redis, one script); the others hand them to their stores once the user is written.
 */
export interface LoginWrite<S extends Beside> {
  patch: UserPatch
  /** The events of this write, from what it did. */
  events: (done: UpsertResult) => LoginEvent[]
  /** The login code's kept answer, rewritten (marked new) when this write made the user. */
  kept?: { key: string, record: Exchange<unknown> }
  /** Issued beside the write once the user_id is known (a session); dropped if the write is refused. */
  beside: (userId: string) => Promise<S>
}

export interface LoginWritten<S> extends UpsertResult {
  events: LoginEvent[]
  beside: S
}

/** A login's write, begun as soon as the identity is known: a store may read what it builds on now. */
export interface PendingLogin {
  commit: <S extends Beside>(write: LoginWrite<S>) => Promise<LoginWritten<S>>
}

/** Where a store that cannot carry them sends a login's events and its kept answer. */
export interface LoginSides {
  events: EventSink
  exchanges: Pick<ExchangeStore, 'annotate'>
}

/** A store's write done, then the events, the kept answer and the session, issued together. */
export async function writeSides<S extends Beside> (
  done: UpsertResult,
  sides: LoginSides,
  write: LoginWrite<S>
): Promise<LoginWritten<S>> {
  const events = write.events(done)
  const kept = done.isNew ? write.kept : undefined
  // Independent writes, issued together: one pipeline rather than one round trip each.
  const [, , beside] = await Promise.all([
    kept !== undefined ? sides.exchanges.annotate(kept.key, kept.record) : undefined,
    sides.events.emit(events),
    write.beside(done.user.user_id)
  ])
  return { ...done, events, beside }
}

/** For a write with nothing beside it. */
export const NOTHING_BESIDE = async (): Promise<Beside> => ({ drop: async () => {} })

/**
 * Users keyed by a user_id, found by identity (appid + openid) and linked by unionid: the
 * first identity with a unionid claims it, and later identities with that unionid, from any
 * app, join the same user.
 */
export interface UserStore {
  /** The one way a user is written: a login (or a phone update) of this identity. */
  beginLogin: (identity: Identity, unionid: string | null) => PendingLogin
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
  /**
   * A withdrawal honoured (WeChat's push): the phone (sealed, masked and its verification time)
   * or the profile (nickname and avatar) removed. The record as it is now, its phone never opened
   * (null in the answer); null when there is no such user. Idempotent.
   */
  forget: (userId: string, what: Forgotten) => Promise<UserRecord | null>
}

/** What a withdrawal removes: the phone, or the nickname and avatar. */
export type Forgotten = 'phone' | 'profile'

/** `record` without what a withdrawal removes (a JSON record as stored, or a UserRecord). */
export function withoutFields<T extends object> (record: T, what: Forgotten, now: string): T {
  const fields = what === 'phone' ? { phone: null, phone_verified_at: null } : { nickname: null, head_pic: null }
  return { ...record, ...fields, updated_at: now }
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
  if (patch.phone !== undefined) {
    // The same number verified again (a retried login, say) keeps the time it was first verified.
    if (!samePhone(cur.phone, patch.phone) || user.phone_verified_at === null) user.phone_verified_at = now
    user.phone = patch.phone
  }
  return user
}

export const blankUser = (userId: string, now: string): UserRecord => ({
  user_id: userId,
  unionid: null,
  nickname: null,
  head_pic: null,
  phone: null,
  phone_verified_at: null,
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
    phone_verified_at: phone === null ? null : (u.phone_verified_at ?? u.updated_at),
    identities: Array.isArray(u.identities) ? u.identities : [],
    created_at: u.created_at,
    updated_at: u.updated_at
  }
}
