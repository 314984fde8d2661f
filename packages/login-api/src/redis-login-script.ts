import { randomUUID } from 'node:crypto'
import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginEvent, RedisStreamEvents } from './events.js'
import type { PiiCipher } from './pii.js'
import { blankUser, merge, normalise, phoneContext, samePhone, type Identity, type RedisUserStore, type UpsertResult, type UserPatch, type UserRecord } from './user-store.js'

/** What a login's commit builds on, as read in one round trip: '' where a key was absent. */
export interface LoginSnapshot {
  /** The identity's user_id. */
  known: string
  /** The unionid's user_id. */
  union: string
  /** The record of `known` (or, for a new identity, of `union`), exactly as stored. */
  raw: string
  /** A new identity's record from before user_ids (user:{appid}:{openid}). */
  legacy: string
}

/** The login's writes, worked out in this process from a snapshot. */
export interface LoginPlan extends UpsertResult {
  snapshot: LoginSnapshot
  identity: Identity
  /** The record to store (its phone sealed). */
  stored: string
  /** The login's unionid, to link to this user where nobody holds it yet. */
  linkUnionid: string | null
}

// KEYS: identity, legacy record, [unionid]. ARGV: the user records' key prefix.
const READ = `
local known = redis.call('GET', KEYS[1])
local union = false
if KEYS[3] then union = redis.call('GET', KEYS[3]) end
local legacy = false
if not known then legacy = redis.call('GET', KEYS[2]) end
local target = known or union
local raw = false
if target then raw = redis.call('GET', ARGV[1] .. target) end
return { known or '', union or '', raw or '', legacy or '' }
`

// KEYS: identity, user record, events stream, unionid, the login code's kept answer.
// ARGV: expected user_id, expected record, user_id, record, link unionid (1/0), the kept answer
// rewritten ('' to leave it), stream cap, event count, then per event its field count and fields.
// Nothing is written unless the identity and the record are as read: another login got there
// first, and this one reads again.
const COMMIT = `
local known = redis.call('GET', KEYS[1])
if (known or '') ~= ARGV[1] then return 0 end
local raw = redis.call('GET', KEYS[2])
if (raw or '') ~= ARGV[2] then return 0 end
if not known then redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[2], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[4], ARGV[3], 'NX') end
if ARGV[6] ~= '' then redis.call('SET', KEYS[5], ARGV[6], 'XX', 'KEEPTTL') end
local i = 9
for e = 1, tonumber(ARGV[8]) do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
`

/**
 * A login's user writes on one Redis server (single or Sentinel) in two round trips: `read`
 * rides with the login code's answer being kept, `commit` writes the identity, the record, the
 * unionid link and the login events at once, with the session and its WAIT beside it. The merge
 * happens here, so the phone is sealed and the events masked as the RedisUserStore does. A
 * Cluster keeps these keys in different slots and uses the store's own steps instead.
 */
export class RedisLoginScript {
  constructor (
    private readonly redis: RedisHandle,
    private readonly users: RedisUserStore,
    private readonly pii: PiiCipher,
    private readonly events: RedisStreamEvents
  ) {}

  /** Issued at once, so it goes out in the same write as the caller's other commands. */
  async read (identity: Identity, unionid: string | null): Promise<LoginSnapshot> {
    const keys = [this.users.identityKey(identity), this.users.legacyKey(identity)]
    if (unionid !== null) keys.push(this.users.unionidKey(unionid))
    const r = await this.redis.cmd.eval(READ, { keys, arguments: [this.users.userKey('')] }) as string[]
    return { known: r[0] ?? '', union: r[1] ?? '', raw: r[2] ?? '', legacy: r[3] ?? '' }
  }

  /** The merged user, as the store would write it: a snapshot's record with this login on it. */
  plan (snapshot: LoginSnapshot, identity: Identity, unionid: string | null, patch: UserPatch): LoginPlan {
    const userId = snapshot.known !== '' ? snapshot.known : snapshot.union !== '' ? snapshot.union : randomUUID()
    const now = new Date().toISOString()
    let base: Record<string, unknown> | null = null
    if (snapshot.raw !== '') base = JSON.parse(snapshot.raw) as Record<string, unknown>
    else if (snapshot.known === '' && snapshot.legacy !== '') {
      // Adopted as the new record's base, as the store's UPSERT does.
      const { appid: _a, openid: _o, ...rest } = JSON.parse(snapshot.legacy) as Record<string, unknown>
      base = rest
    }
    const oldPhone = base === null ? null : this.users.phoneOf(base.phone, userId)
    const cur = base === null
      ? blankUser(userId, now)
      : normalise({ ...blankUser(userId, now), ...base, user_id: userId } as unknown as UserRecord, oldPhone)
    const user = merge(cur, identity, unionid, patch, now)
    const sealed = user.phone === null ? null : this.pii.seal(user.phone, phoneContext(userId))
    return {
      snapshot,
      identity,
      user,
      isNew: base === null,
      phoneChanged: !samePhone(oldPhone, patch.phone),
      stored: JSON.stringify({ ...base, ...user, phone: sealed }),
      linkUnionid: unionid !== null && snapshot.union === '' ? unionid : null
    }
  }

  /**
   * The plan written with its events, and `kept` (the login code's answer) rewritten; false when
   * another login changed the identity or the record since the snapshot (nothing was written).
   */
  async commit (plan: LoginPlan, events: LoginEvent[], kept?: { key: string, record: string }): Promise<boolean> {
    const { snapshot, user } = plan
    const userKey = this.users.userKey(user.user_id)
    const fields = events.flatMap(e => {
      const flat = Object.entries(this.events.fields(e)).flat()
      return [String(flat.length), ...flat]
    })
    const unionKey = plan.linkUnionid !== null ? this.users.unionidKey(plan.linkUnionid) : userKey
    const write = this.redis.cmd.eval(COMMIT, {
      keys: [this.users.identityKey(plan.identity), userKey, this.events.key, unionKey, kept?.key ?? userKey],
      arguments: [
        snapshot.known, snapshot.raw, user.user_id, plan.stored, plan.linkUnionid !== null ? '1' : '0',
        kept?.record ?? '', String(this.events.maxLen), String(events.length), ...fields
      ]
    })
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): its WAIT rides in the same write.
    return Number(await this.redis.durable(userKey, write)) === 1
  }
}
