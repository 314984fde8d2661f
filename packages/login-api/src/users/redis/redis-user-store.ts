import { randomUUID } from 'node:crypto'
import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../../keys.js'
import type { PiiCipher } from '../pii.js'
import {
  normalise,
  phoneContext,
  samePhone,
  type DeletedUser,
  type Identity,
  type PhoneInfo,
  type UpsertResult,
  type UserPatch,
  type UserRecord,
  type UserStore
} from '../user-store.js'

// Read-merge-write of one user record in one step, so two logins of one user on two replicas
// never lose a field and exactly one of them sees is_new_user. ARGV[5] is a record written by
// the login-api before user_ids existed (key user:{appid}:{openid}), adopted as the base.
const UPSERT = `
local cur = redis.call('GET', KEYS[1])
local patch = cjson.decode(ARGV[1])
local now = ARGV[2]
local identity = cjson.decode(ARGV[3])
local unionid = ARGV[4]
local user
local isNew = 0
local oldPhone = cjson.null
if cur then
  user = cjson.decode(cur)
  oldPhone = user.phone
elseif ARGV[5] ~= '' then
  user = cjson.decode(ARGV[5])
  user.appid = nil
  user.openid = nil
  oldPhone = user.phone
else
  isNew = 1
  user = { unionid = cjson.null, nickname = cjson.null, head_pic = cjson.null, phone = cjson.null, created_at = now }
end
user.user_id = ARGV[6]
if type(user.identities) ~= 'table' or next(user.identities) == nil then user.identities = {} end
local seen = false
for _, i in ipairs(user.identities) do
  if i.appid == identity.appid and i.openid == identity.openid then seen = true end
end
if not seen then table.insert(user.identities, identity) end
if unionid ~= '' and (user.unionid == nil or user.unionid == cjson.null) then user.unionid = unionid end
for k, v in pairs(patch) do user[k] = v end
user.updated_at = now
local out = cjson.encode(user)
redis.call('SET', KEYS[1], out)
if oldPhone == nil then oldPhone = cjson.null end
return { isNew, out, cjson.encode(oldPhone) }
`

// A record written again only if nobody changed it since it was read (re-encryption on read).
const REWRITE_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0
`

/**
 * Keys: `user:{user_id}` (the record), `identity:{appid}:{openid}` and `unionid:{unionid}` (each
 * a user_id). Each command touches one key, so it works unchanged in a Redis Cluster; races
 * between replicas are settled by SET NX, the identity key being the authority.
 */
export class RedisUserStore implements UserStore {
  constructor (
    private readonly redis: RedisHandle,
    readonly keys: LoginKeys,
    private readonly pii: PiiCipher
  ) {}

  userKey (userId: string): string {
    return this.keys.user(userId)
  }

  identityKey (i: Identity): string {
    return this.keys.identity(i.appid, i.openid)
  }

  unionidKey (unionid: string): string {
    return this.keys.unionid(unionid)
  }

  legacyKey (i: Identity): string {
    return this.keys.legacyUser(i.appid, i.openid)
  }

  async userIdOf (identity: Identity): Promise<string | null> {
    return await this.redis.cmd.get(this.identityKey(identity))
  }

  /**
   * The identity's user_id, claimed now if it has none (the unionid's user, or a new one), and
   * the previous release's record of it when the identity is new. The reads go out together:
   * node-redis pipelines commands issued in the same tick.
   */
  private async resolve (
    identity: Identity,
    unionid: string | null
  ): Promise<{ userId: string, legacy: string | null }> {
    const [known, unionUser, legacy] = await Promise.all([
      this.userIdOf(identity),
      unionid !== null ? this.redis.cmd.get(this.unionidKey(unionid)) : null,
      this.redis.cmd.get(this.legacyKey(identity))
    ])
    let userId = known
    let created = false
    if (userId === null) {
      const candidate = unionUser ?? randomUUID()
      const key = this.identityKey(identity)
      created = (await this.redis.cmd.set(key, candidate, { NX: true })) === 'OK'
      // Another replica resolved it first: its user_id stands.
      userId = created ? candidate : ((await this.redis.cmd.get(key)) ?? candidate)
      if (created) await this.redis.replicated(key)
    }
    if (unionid !== null && unionUser === null) {
      // The first user to bring a unionid keeps it; an identity resolved before its app was
      // bound to the Open Platform keeps its own user_id (docs/login-api.md: several mini-programs).
      await this.redis.cmd.set(this.unionidKey(unionid), userId, { NX: true })
    }
    return { userId, legacy: created ? legacy : null }
  }

  async upsertUser (identity: Identity, unionid: string | null, patch: UserPatch): Promise<UpsertResult> {
    const { userId, legacy } = await this.resolve(identity, unionid)
    const key = this.userKey(userId)
    const stored =
      patch.phone === undefined ? patch : { ...patch, phone: this.pii.seal(patch.phone, phoneContext(userId)) }
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not lose a user.
    const r = (await this.redis.durable(
      key,
      this.redis.cmd.eval(UPSERT, {
        keys: [key],
        arguments: [
          JSON.stringify(stored),
          new Date().toISOString(),
          JSON.stringify(identity),
          unionid ?? '',
          legacy ?? '',
          userId
        ]
      })
    )) as [number, string, string]
    const oldPhone = this.phoneOf(JSON.parse(r[2]), userId)
    const user = await this.opened(key, r[1])
    return { isNew: Number(r[0]) === 1, user, phoneChanged: !samePhone(oldPhone, patch.phone) }
  }

  async getUser (userId: string): Promise<UserRecord | null> {
    const key = this.userKey(userId)
    const raw = await this.redis.cmd.get(key)
    return raw === null ? null : await this.opened(key, raw)
  }

  phoneOf (stored: unknown, userId: string): PhoneInfo | null {
    const phone = this.pii.open<unknown>(stored, phoneContext(userId))
    return phone !== null && typeof phone === 'object' && typeof (phone as PhoneInfo).purePhoneNumber === 'string'
      ? (phone as PhoneInfo)
      : null
  }

  /**
   * The record with its phone decrypted. One stored in clear (before encryption) or under a key
   * that no longer encrypts is sealed again with the current key, if nobody changed it since.
   */
  private async opened (key: string, raw: string): Promise<UserRecord> {
    const record = JSON.parse(raw) as UserRecord
    const user = normalise(record, this.phoneOf(record.phone, record.user_id))
    if (this.pii.stale(record.phone) && user.phone !== null) {
      const resealed = JSON.stringify({ ...record, phone: this.pii.seal(user.phone, phoneContext(record.user_id)) })
      await this.redis.cmd.eval(REWRITE_UNCHANGED, { keys: [key], arguments: [raw, resealed] })
    }
    return user
  }

  /** The record as stored, its phone still sealed. */
  private async raw (userId: string): Promise<UserRecord | null> {
    const raw = await this.redis.cmd.get(this.userKey(userId))
    return raw === null ? null : (JSON.parse(raw) as UserRecord)
  }

  async identitiesOf (userId: string): Promise<Identity[]> {
    const record = await this.raw(userId)
    return Array.isArray(record?.identities) ? record.identities : []
  }

  async hasLegacyRecord (identity: Identity): Promise<boolean> {
    return (await this.redis.cmd.exists(this.legacyKey(identity))) === 1
  }

  async deleteUser (userId: string): Promise<DeletedUser | null> {
    const record = await this.raw(userId)
    if (record === null) return null
    const user = {
      ...record,
      identities: Array.isArray(record.identities) ? record.identities : [],
      unionid: record.unionid ?? null
    }
    const keys = [
      ...user.identities.flatMap(i => [this.identityKey(i), this.legacyKey(i)]),
      ...(user.unionid !== null ? [this.unionidKey(user.unionid)] : []),
      this.userKey(userId)
    ]
    // The unionid link is removed only where it names this user. One key a command (Cluster).
    await Promise.all(
      keys.map(async k => await this.redis.cmd.eval(DELETE_IF_OURS, { keys: [k], arguments: [userId] }))
    )
    for (const k of keys) await this.redis.replicated(k)
    return { user_id: userId, identities: user.identities, created_at: user.created_at }
  }
}

// Deletes an index key that names this user, and the user's own record (a JSON object).
const DELETE_IF_OURS = `
local v = redis.call('GET', KEYS[1])
if v == false then return 0 end
if v == ARGV[1] or string.sub(v, 1, 1) == '{' then return redis.call('DEL', KEYS[1]) end
return 0
`
