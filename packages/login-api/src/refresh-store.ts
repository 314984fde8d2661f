import type { RedisHandle } from '@wxlogin/service-kit'
import { ExpiringMap } from './expiring-map.js'
import { INDEX_AND_CAP } from './session-store.js'

/** Whose a refresh family is: one login, the chain of refresh tokens rotated from it. */
export interface RefreshFamily { user_id: string, appid: string, openid: string }

/**
 * What presenting a refresh token did:
 * - `rotated`: it was the family's current token; `successorHash` is current now.
 * - `grace`: it was the token spent last, within the grace, and the same successor was derived
 *   (a client that lost the answer, or sent twice at once): the same successor is answered.
 * - `reuse`: a spent token: the family is revoked (the sign of a stolen token).
 * - `conflict`: the token spent last, within the grace, but another successor was derived (a key
 *   rotation between the two requests): refused, the family kept.
 * - `unknown`: no such family or token (expired, revoked, logged out, forged).
 */
export type RotateResult =
  | { result: 'rotated' | 'grace', family: RefreshFamily }
  | { result: 'reuse', family: RefreshFamily }
  | { result: 'conflict' | 'unknown' }

export interface RefreshStore {
  /** A new family with its first token; the user's oldest families beyond `maxPerUser` end. */
  create: (familyId: string, tokenHash: string, family: RefreshFamily, ttlSeconds: number, maxPerUser: number) => Promise<void>
  /** Spends `tokenHash` for `successorHash`, atomically (see RotateResult); the family lives `ttlSeconds` more. */
  rotate: (familyId: string, tokenHash: string, successorHash: string, ttlSeconds: number, graceMs: number) => Promise<RotateResult>
  /** False once the family is revoked, logged out or expired: its access tokens are refused where checked. */
  isLive: (familyId: string) => Promise<boolean>
  revoke: (familyId: string) => Promise<void>
  /** Revokes every family of the user (logout everywhere, deletion); how many there were. */
  revokeAllOf: (userId: string) => Promise<number>
}

/** Spent tokens remembered per family, to tell reuse from a forgery: the newest this many. */
const SPENT_KEPT = 1000

interface MemoryFamily extends RefreshFamily { current: string, prev: string, prevAt: number, spent: Set<string> }

/** For one replica without Redis. */
export class MemoryRefreshStore implements RefreshStore {
  private readonly families = new ExpiringMap<MemoryFamily>()

  async create (familyId: string, tokenHash: string, family: RefreshFamily, ttlSeconds: number, maxPerUser: number): Promise<void> {
    this.families.set(familyId, { ...family, current: tokenHash, prev: '', prevAt: 0, spent: new Set() }, ttlSeconds * 1000)
    const mine = [...this.families].filter(([, f]) => f.user_id === family.user_id).map(([id]) => id)
    for (const id of mine.slice(0, Math.max(0, mine.length - maxPerUser))) this.families.delete(id)
  }

  async rotate (familyId: string, tokenHash: string, successorHash: string, ttlSeconds: number, graceMs: number): Promise<RotateResult> {
    const f = this.families.get(familyId)
    if (f === undefined) return { result: 'unknown' }
    const family = { user_id: f.user_id, appid: f.appid, openid: f.openid }
    const now = Date.now()
    if (tokenHash === f.current) {
      f.spent.add(tokenHash)
      if (f.spent.size > SPENT_KEPT) f.spent.delete(f.spent.values().next().value as string)
      this.families.set(familyId, { ...f, prev: tokenHash, prevAt: now, current: successorHash }, ttlSeconds * 1000)
      return { result: 'rotated', family }
    }
    if (tokenHash === f.prev && now - f.prevAt < graceMs) return successorHash === f.current ? { result: 'grace', family } : { result: 'conflict' }
    if (f.spent.has(tokenHash)) {
      this.families.delete(familyId)
      return { result: 'reuse', family }
    }
    return { result: 'unknown' }
  }

  async isLive (familyId: string): Promise<boolean> { return this.families.get(familyId) !== undefined }
  async revoke (familyId: string): Promise<void> { this.families.delete(familyId) }

  async revokeAllOf (userId: string): Promise<number> {
    const mine = [...this.families].filter(([, f]) => f.user_id === userId).map(([id]) => id)
    for (const id of mine) this.families.delete(id)
    return mine.length
  }
}

// KEYS: the family (a hash), its spent tokens (a sorted set by time); one slot ({family id}).
// ARGV: presented hash, successor hash, now ms, grace ms, ttl s, spent kept.
const ROTATE = `
local f = redis.call('HMGET', KEYS[1], 'user_id', 'appid', 'openid', 'current', 'prev', 'prev_at')
if not f[1] then return {'unknown'} end
if ARGV[1] == f[4] then
  redis.call('HSET', KEYS[1], 'current', ARGV[2], 'prev', ARGV[1], 'prev_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  return {'rotated', f[1], f[2], f[3]}
end
if ARGV[1] == f[5] and tonumber(ARGV[3]) - tonumber(f[6]) < tonumber(ARGV[4]) then
  if ARGV[2] == f[4] then return {'grace', f[1], f[2], f[3]} end
  return {'conflict'}
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'reuse', f[1], f[2], f[3]}
end
return {'unknown'}
`

/**
 * `refresh:{family}` (a hash: whose, the current token's hash, the one spent last and when) and
 * `refresh:{family}:spent` (hashes of spent tokens), one slot so a rotation is one script in a
 * Cluster too; `user-refresh:{user_id}`, the user's families by age (logout everywhere, the cap).
 * Only SHA-256 hashes of tokens are stored.
 */
export class RedisRefreshStore implements RefreshStore {
  constructor (private readonly redis: RedisHandle, private readonly prefix: string) {}

  private key (familyId: string): string { return `${this.prefix}refresh:{${familyId}}` }
  private spentKey (familyId: string): string { return `${this.key(familyId)}:spent` }
  private indexKey (userId: string): string { return `${this.prefix}user-refresh:${userId}` }

  async create (familyId: string, tokenHash: string, family: RefreshFamily, ttlSeconds: number, maxPerUser: number): Promise<void> {
    const key = this.key(familyId)
    const index = this.indexKey(family.user_id)
    // Issued together: one pipeline (in a Cluster, to both nodes at once).
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not log the
    // user out. The WAITs ride in the same write.
    const [, , evicted] = await Promise.all([
      this.redis.cmd.hSet(key, { ...family, current: tokenHash, prev: '', prev_at: '0' }),
      this.redis.durable(key, this.redis.cmd.expire(key, ttlSeconds)),
      this.redis.durable(index, this.redis.cmd.eval(INDEX_AND_CAP, { keys: [index], arguments: [familyId, String(Date.now()), String(ttlSeconds), String(maxPerUser)] }) as Promise<string[]>)
    ])
    await Promise.all(evicted.map(async (id: string) => await this.redis.cmd.del([this.key(id), this.spentKey(id)])))
  }

  async rotate (familyId: string, tokenHash: string, successorHash: string, ttlSeconds: number, graceMs: number): Promise<RotateResult> {
    const key = this.key(familyId)
    const r = await this.redis.cmd.eval(ROTATE, {
      keys: [key, this.spentKey(familyId)],
      arguments: [tokenHash, successorHash, String(Date.now()), String(graceMs), String(ttlSeconds), String(SPENT_KEPT)]
    }) as string[]
    const result = r[0]
    // A rotation (or a revocation) a failover undid would bring a spent token back.
    if (result === 'rotated' || result === 'reuse') await this.redis.replicated(key)
    if (result === 'rotated' || result === 'grace' || result === 'reuse') {
      return { result, family: { user_id: String(r[1]), appid: String(r[2]), openid: String(r[3]) } }
    }
    return { result: result === 'conflict' ? 'conflict' : 'unknown' }
  }

  async isLive (familyId: string): Promise<boolean> {
    return await this.redis.cmd.exists(this.key(familyId)) === 1
  }

  async revoke (familyId: string): Promise<void> {
    const key = this.key(familyId)
    await this.redis.cmd.del([key, this.spentKey(familyId)])
    await this.redis.replicated(key)
  }

  async revokeAllOf (userId: string): Promise<number> {
    const index = this.indexKey(userId)
    const ids = await this.redis.cmd.zRange(index, 0, -1)
    // One slot a command: the families live in other slots of a Cluster.
    const ended = await Promise.all(ids.map(async id => await this.redis.cmd.del([this.key(id), this.spentKey(id)])))
    await this.redis.cmd.del(index)
    for (const id of ids) await this.redis.replicated(this.key(id))
    await this.redis.replicated(index)
    return ended.filter(n => n > 0).length
  }
}
