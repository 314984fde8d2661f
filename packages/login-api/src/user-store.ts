import type { RedisHandle } from '@wxlogin/service-kit'

// A type, not an interface: it must fit the response schemas' open object types.
export type PhoneInfo = { phoneNumber: string, purePhoneNumber: string, countryCode: string }

export interface UserRecord {
  appid: string
  openid: string
  unionid: string | null
  nickname: string | null
  head_pic: string | null
  phone: PhoneInfo | null
  created_at: string
  updated_at: string
}

/** Fields a login may change; an absent field keeps what is stored. */
export interface UserPatch {
  unionid?: string
  nickname?: string
  head_pic?: string
  phone?: PhoneInfo
}

/** Users keyed by appid+openid. */
export interface UserStore {
  upsertUser: (appid: string, openid: string, patch: UserPatch) => Promise<{ user: UserRecord, isNew: boolean }>
  getUser: (appid: string, openid: string) => Promise<UserRecord | null>
}

/** `patch` over `cur` (or a new user); a field the patch leaves out keeps its value. */
function merge (cur: UserRecord | null, appid: string, openid: string, patch: UserPatch, now: string): UserRecord {
  const base: UserRecord = cur ?? { appid, openid, unionid: null, nickname: null, head_pic: null, phone: null, created_at: now, updated_at: now }
  const user = { ...base, updated_at: now }
  if (patch.unionid !== undefined) user.unionid = patch.unionid
  if (patch.nickname !== undefined) user.nickname = patch.nickname
  if (patch.head_pic !== undefined) user.head_pic = patch.head_pic
  if (patch.phone !== undefined) user.phone = patch.phone
  return user
}

/** For one replica without Redis. */
export class MemoryUserStore implements UserStore {
  private readonly users = new Map<string, UserRecord>()

  async upsertUser (appid: string, openid: string, patch: UserPatch): Promise<{ user: UserRecord, isNew: boolean }> {
    const key = `${appid}:${openid}`
    const cur = this.users.get(key) ?? null
    const user = merge(cur, appid, openid, patch, new Date().toISOString())
    this.users.set(key, user)
    return { user, isNew: cur === null }
  }

  async getUser (appid: string, openid: string): Promise<UserRecord | null> {
    return this.users.get(`${appid}:${openid}`) ?? null
  }
}

// Read-merge-write in one step, so two logins of one openid on two replicas never lose a field
// and exactly one of them sees is_new_user.
const UPSERT = `
local cur = redis.call('GET', KEYS[1])
local patch = cjson.decode(ARGV[1])
local now = ARGV[2]
local user
local isNew = 0
if cur then
  user = cjson.decode(cur)
else
  isNew = 1
  user = { appid = ARGV[3], openid = ARGV[4], unionid = cjson.null, nickname = cjson.null, head_pic = cjson.null, phone = cjson.null, created_at = now }
end
for k, v in pairs(patch) do user[k] = v end
user.updated_at = now
local out = cjson.encode(user)
redis.call('SET', KEYS[1], out)
return { isNew, out }
`

export class RedisUserStore implements UserStore {
  constructor (private readonly redis: RedisHandle, private readonly prefix: string) {}

  private userKey (appid: string, openid: string): string { return `${this.prefix}user:${appid}:${openid}` }

  async upsertUser (appid: string, openid: string, patch: UserPatch): Promise<{ user: UserRecord, isNew: boolean }> {
    const key = this.userKey(appid, openid)
    const r = await this.redis.cmd.eval(UPSERT, {
      keys: [key],
      arguments: [JSON.stringify(patch), new Date().toISOString(), appid, openid]
    }) as [number, string]
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not lose a user.
    await this.redis.replicated(key)
    return { isNew: Number(r[0]) === 1, user: normalise(JSON.parse(r[1]) as UserRecord) }
  }

  async getUser (appid: string, openid: string): Promise<UserRecord | null> {
    const raw = await this.redis.cmd.get(this.userKey(appid, openid))
    return raw === null ? null : normalise(JSON.parse(raw) as UserRecord)
  }
}

/** cjson encodes an empty Lua table as {} and drops nulls set in Lua; give the record its shape back. */
function normalise (u: UserRecord): UserRecord {
  const phone = u.phone as unknown
  return {
    appid: u.appid,
    openid: u.openid,
    unionid: u.unionid ?? null,
    nickname: u.nickname ?? null,
    head_pic: u.head_pic ?? null,
    phone: phone !== null && typeof phone === 'object' && typeof (phone as PhoneInfo).purePhoneNumber === 'string' ? phone as PhoneInfo : null,
    created_at: u.created_at,
    updated_at: u.updated_at
  }
}
