import { ExpiringMap, type RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../../keys.js'

/** Whose a refresh family is: one login, the chain of refresh tokens rotated from it. */
export interface RefreshFamily {
  user_id: string
  appid: string
  openid: string
}

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
  create: (
    familyId: string,
    tokenHash: string,
    family: RefreshFamily,
    ttlSeconds: number,
    maxPerUser: number
  ) => Promise<void>
  /** Spends `tokenHash` for `successorHash`, atomically (see RotateResult); the family lives `ttlSeconds` more. */
  rotate: (
    familyId: string,
    tokenHash: string,
    successorHash: string,
    ttlSeconds: number,
    graceMs: number
  ) => Promise<RotateResult>
  /** False once the family is revoked, logged out or expired: its access tokens are refused where checked. */
  isLive: (familyId: string) => Promise<boolean>
  revoke: (familyId: string) => Promise<void>
  /** Revokes every family of the user (logout everywhere, deletion); how many there were. */
  revokeAllOf: (userId: string) => Promise<number>
}

/** Spent tokens remembered per family, to tell reuse from a forgery: the newest this many. */
const SPENT_KEPT = 1000

interface MemoryFamily extends RefreshFamily {
  current: string
  prev: string
  prevAt: number
  spent: Set<string>
  /** When the family expires unless refreshed (epoch ms): the cap ends the soonest first. */
  until: number
}

/** For one replica without Redis. Each user's families are indexed: no scan of everyone's. */
export class MemoryRefreshStore implements RefreshStore {
  private readonly families = new ExpiringMap<MemoryFamily>()
  /** A user's family ids; lives as long as the user's longest family, pruned as they end. */
  private readonly byUser = new ExpiringMap<Set<string>>()

  /** The user's live families (the ended ones pruned), soonest to expire first. */
  private liveOf (userId: string): Array<[string, MemoryFamily]> {
    const ids = this.byUser.get(userId) ?? new Set<string>()
    const live: Array<[string, MemoryFamily]> = []
    for (const id of ids) {
      const f = this.families.get(id)
      if (f === undefined) ids.delete(id)
      else live.push([id, f])
    }
    return live.sort((a, b) => a[1].until - b[1].until)
  }

  /** The family (re)indexed under its user, the index living as long as the longest family. */
  private index (familyId: string, f: MemoryFamily): void {
    const ids = this.byUser.get(f.user_id) ?? new Set<string>()
    ids.add(familyId)
    const longest = Math.max(f.until, ...this.liveOf(f.user_id).map(([, g]) => g.until))
    this.byUser.set(f.user_id, ids, longest - Date.now())
  }

  async create (
    familyId: string,
    tokenHash: string,
    family: RefreshFamily,
    ttlSeconds: number,
    maxPerUser: number
  ): Promise<void> {
    const until = Date.now() + ttlSeconds * 1000
    const f = { ...family, current: tokenHash, prev: '', prevAt: 0, spent: new Set<string>(), until }
    this.families.set(familyId, f, ttlSeconds * 1000)
    this.index(familyId, f)
    const mine = this.liveOf(family.user_id)
    for (const [id] of mine.slice(0, Math.max(0, mine.length - maxPerUser))) this.families.delete(id)
  }

  async rotate (
    familyId: string,
    tokenHash: string,
    successorHash: string,
    ttlSeconds: number,
    graceMs: number
  ): Promise<RotateResult> {
    const f = this.families.get(familyId)
    if (f === undefined) return { result: 'unknown' }
    const family = { user_id: f.user_id, appid: f.appid, openid: f.openid }
    const now = Date.now()
    if (tokenHash === f.current) {
      f.spent.add(tokenHash)
      if (f.spent.size > SPENT_KEPT) f.spent.delete(f.spent.values().next().value as string)
      const next = { ...f, prev: tokenHash, prevAt: now, current: successorHash, until: now + ttlSeconds * 1000 }
      this.families.set(familyId, next, ttlSeconds * 1000)
      // The user's index lives as long as this family now does: logout everywhere finds it.
      this.index(familyId, next)
      return { result: 'rotated', family }
    }
    if (tokenHash === f.prev && now - f.prevAt < graceMs) {
      return successorHash === f.current ? { result: 'grace', family } : { result: 'conflict' }
    }
    if (f.spent.has(tokenHash)) {
      this.families.delete(familyId)
      return { result: 'reuse', family }
    }
    return { result: 'unknown' }
  }

  async isLive (familyId: string): Promise<boolean> {
    return this.families.get(familyId) !== undefined
  }

  async revoke (familyId: string): Promise<void> {
    this.families.delete(familyId)
  }

  async revokeAllOf (userId: string): Promise<number> {
    const mine = this.liveOf(userId)
    for (const [id] of mine) this.families.delete(id)
    this.byUser.delete(userId)
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

// The user's index of families, scored by when each expires unless refreshed: the ones past
// their expiry are dropped, so the cap counts only families that exist, and the index itself
// expires with the longest-lived family. KEYS: the index. ARGV: family id, its expiry (ms),
// now (ms), the cap (0: no cap). Returns the families the cap ends (the soonest to expire).
const INDEX_FAMILY = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
local cap = tonumber(ARGV[4])
if cap == 0 then return {} end
local over = redis.call('ZCARD', KEYS[1]) - cap
if over <= 0 then return {} end
local ended = redis.call('ZRANGE', KEYS[1], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
return ended
`

/**
 * `refresh:{family}` (a hash: whose, the current token's hash, the one spent last and when) and
 * `refresh:{family}:spent` (hashes of spent tokens), one slot so a rotation is one script in a
 * Cluster too; `user-refresh:{user_id}`, the user's families scored by expiry (logout
 * everywhere, the cap), which every rotation extends: an index that expired before an actively
 * refreshed family would let that family outlive logout everywhere and deletion.
 * Only SHA-256 hashes of tokens are stored.
 */
export class RedisRefreshStore implements RefreshStore {
  constructor (
    private readonly redis: RedisHandle,
    private readonly keys: LoginKeys
  ) {}

  private key (familyId: string): string {
    return this.keys.refreshFamily(familyId)
  }

  private spentKey (familyId: string): string {
    return this.keys.refreshSpent(familyId)
  }

  private indexKey (userId: string): string {
    return this.keys.refreshIndex(userId)
  }

  /** The family in its user's index until `ttlSeconds` from now; the ones the cap ends. */
  private async index (userId: string, familyId: string, ttlSeconds: number, maxPerUser: number): Promise<string[]> {
    const index = this.indexKey(userId)
    const now = Date.now()
    // A second past the family's own expiry, which Redis sets a moment later than this clock reads.
    const args = [familyId, String(now + ttlSeconds * 1000 + 1000), String(now), String(maxPerUser)]
    return await this.redis.durable(
      index,
      this.redis.cmd.eval(INDEX_FAMILY, { keys: [index], arguments: args }) as Promise<string[]>
    )
  }

  async create (
    familyId: string,
    tokenHash: string,
    family: RefreshFamily,
    ttlSeconds: number,
    maxPerUser: number
  ): Promise<void> {
    const key = this.key(familyId)
    // Issued together: one pipeline (in a Cluster, to both nodes at once).
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not log the
    // user out. The WAITs ride in the same write.
    const [, , ended] = await Promise.all([
      this.redis.cmd.hSet(key, { ...family, current: tokenHash, prev: '', prev_at: '0' }),
      this.redis.durable(key, this.redis.cmd.expire(key, ttlSeconds)),
      this.index(family.user_id, familyId, ttlSeconds, maxPerUser)
    ])
    await Promise.all(ended.map(async (id: string) => await this.redis.cmd.del([this.key(id), this.spentKey(id)])))
  }

  async rotate (
    familyId: string,
    tokenHash: string,
    successorHash: string,
    ttlSeconds: number,
    graceMs: number
  ): Promise<RotateResult> {
    const key = this.key(familyId)
    const r = (await this.redis.cmd.eval(ROTATE, {
      keys: [key, this.spentKey(familyId)],
      arguments: [tokenHash, successorHash, String(Date.now()), String(graceMs), String(ttlSeconds), String(SPENT_KEPT)]
    })) as string[]
    const result = r[0]
    if (result === 'rotated' || result === 'grace' || result === 'reuse') {
      const family = { user_id: String(r[1]), appid: String(r[2]), openid: String(r[3]) }
      const index = this.indexKey(family.user_id)
      // Before the new pair is answered: the index must outlive the family it now extends (a
      // retry within the grace lands here again if this fails). A reused family leaves it.
      if (result === 'reuse') await this.redis.cmd.zRem(index, familyId)
      else await this.index(family.user_id, familyId, ttlSeconds, 0)
      // A rotation (or a revocation) a failover undid would bring a spent token back.
      if (result !== 'grace') await this.redis.replicated(key)
      return { result, family }
    }
    return { result: result === 'conflict' ? 'conflict' : 'unknown' }
  }

  async isLive (familyId: string): Promise<boolean> {
    return (await this.redis.cmd.exists(this.key(familyId))) === 1
  }

  async revoke (familyId: string): Promise<void> {
    const key = this.key(familyId)
    const userId = await this.redis.cmd.hGet(key, 'user_id')
    await this.redis.cmd.del([key, this.spentKey(familyId)])
    // Out of the user's index too, so the cap counts only the families that exist.
    if (userId !== null && userId !== undefined) await this.redis.cmd.zRem(this.indexKey(userId), familyId)
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
