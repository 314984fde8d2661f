import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../../keys.js'
import type { RedisStreamEvents } from '../../login/events.js'
import type { PiiCipher } from '../pii.js'
import {
  normalise,
  phoneContext,
  type DeletedUser,
  type Forgotten,
  withoutFields,
  type Identity,
  type PendingLogin,
  type UserRecord,
  type UserStore
} from '../user-store.js'
import { openPhone, RedisLoginScript } from './redis-login-script.js'

// A record written again only if nobody changed it since it was read (re-encryption on read).
const REWRITE_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0
`

/**
 * Keys: `user:{user_id}` (the record), `identity:{appid}:{openid}` and `unionid:{unionid}` (each
 * a user_id). A login writes them, its events and its kept answer in one script after one read
 * (RedisLoginScript); the identity key is the authority when two replicas race.
 */
export class RedisUserStore implements UserStore {
  private readonly script: RedisLoginScript

  constructor (
    private readonly redis: RedisHandle,
    readonly keys: LoginKeys,
    private readonly pii: PiiCipher,
    events: RedisStreamEvents
  ) {
    this.script = new RedisLoginScript(redis, keys, pii, events)
  }

  beginLogin (identity: Identity, unionid: string | null): PendingLogin {
    return this.script.begin(identity, unionid)
  }

  userKey (userId: string): string {
    return this.keys.user(userId)
  }

  identityKey (i: Identity): string {
    return this.keys.identity(i.appid, i.openid)
  }

  unionidKey (unionid: string): string {
    return this.keys.unionid(unionid)
  }

  async userIdOf (identity: Identity): Promise<string | null> {
    return await this.redis.cmd.get(this.identityKey(identity))
  }

  async getUser (userId: string): Promise<UserRecord | null> {
    const key = this.userKey(userId)
    const raw = await this.redis.cmd.get(key)
    return raw === null ? null : await this.opened(key, raw)
  }

  /**
   * The record with its phone decrypted. One stored in clear (before encryption) or under a key
   * that no longer encrypts is sealed again with the current key, if nobody changed it since.
   */
  private async opened (key: string, raw: string): Promise<UserRecord> {
    const record = JSON.parse(raw) as UserRecord
    const user = normalise(record, openPhone(this.pii, record.phone, record.user_id))
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

  async forget (userId: string, what: Forgotten): Promise<UserRecord | null> {
    const key = this.userKey(userId)
    // Compare-and-write: a login that changes the record meanwhile makes this read again.
    for (let attempt = 0; attempt < 16; attempt++) {
      const raw = await this.redis.cmd.get(key)
      if (raw === null) return null
      const next = withoutFields(JSON.parse(raw) as Record<string, unknown>, what, new Date().toISOString())
      const written = JSON.stringify(next)
      const write = this.redis.cmd.eval(REWRITE_UNCHANGED, { keys: [key], arguments: [raw, written] })
      if (Number(await this.redis.durable(key, write)) === 1) {
        return normalise({ ...(next as unknown as UserRecord), phone: null }, null)
      }
    }
    throw new Error('the user record kept changing')
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
      ...user.identities.map(i => this.identityKey(i)),
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
