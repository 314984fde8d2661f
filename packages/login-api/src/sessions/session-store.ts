import { ExpiringMap, type RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../keys.js'

/**
 * Who a session belongs to, and from which app. The session's key is the SHA-256 of its token,
 * never the token. (Sessions from before user_ids had none: `pnpm migrate-legacy` gives them one.)
 */
export interface SessionRecord {
  user_id: string
  appid: string
  openid: string
}

export interface SessionStore {
  /** Stores a session; the user's oldest sessions beyond `maxPerUser` end. */
  create: (tokenHash: string, session: SessionRecord, ttlSeconds: number, maxPerUser: number) => Promise<void>
  get: (tokenHash: string) => Promise<SessionRecord | null>
  delete: (tokenHash: string) => Promise<boolean>
  /** Ends every session of a user (logout everywhere); how many there were. */
  deleteAllOf: (userId: string) => Promise<number>
}

/** For one replica without Redis. Each user's sessions are indexed: a login scans no one else's. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new ExpiringMap<SessionRecord>()
  /** A user's session hashes, oldest first; lives as long as the newest session, pruned as they end. */
  private readonly byUser = new ExpiringMap<Set<string>>()

  /** The user's live sessions, oldest first (a Set keeps insertion order); the ended ones pruned. */
  private liveOf (userId: string): string[] {
    const hashes = this.byUser.get(userId)
    if (hashes === undefined) return []
    for (const hash of hashes) if (this.sessions.get(hash) === undefined) hashes.delete(hash)
    return [...hashes]
  }

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number, maxPerUser: number): Promise<void> {
    this.sessions.set(tokenHash, session, ttlSeconds * 1000)
    const mine = this.liveOf(session.user_id)
    const hashes = new Set([...mine, tokenHash])
    for (const hash of mine.slice(0, Math.max(0, hashes.size - maxPerUser))) {
      this.sessions.delete(hash)
      hashes.delete(hash)
    }
    this.byUser.set(session.user_id, hashes, ttlSeconds * 1000)
  }

  async get (tokenHash: string): Promise<SessionRecord | null> {
    return this.sessions.get(tokenHash) ?? null
  }

  async delete (tokenHash: string): Promise<boolean> {
    return this.sessions.delete(tokenHash)
  }

  async deleteAllOf (userId: string): Promise<number> {
    const hashes = this.liveOf(userId)
    for (const hash of hashes) this.sessions.delete(hash)
    this.byUser.delete(userId)
    return hashes.length
  }
}

/**
 * `session:{hash}` per session, and `user-sessions-by-age:{user_id}`, a sorted set of the user's
 * session hashes by creation time (for logout everywhere and the per-user cap), living as long as
 * the user's newest session.
 */
export class RedisSessionStore implements SessionStore {
  constructor (
    private readonly redis: RedisHandle,
    private readonly keys: LoginKeys
  ) {}

  private key (hash: string): string {
    return this.keys.session(hash)
  }

  private indexKey (userId: string): string {
    return this.keys.sessionsByAge(userId)
  }

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number, maxPerUser: number): Promise<void> {
    const key = this.key(tokenHash)
    const value = JSON.stringify(session)
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not log the
    // user out. Each WAIT rides in the same write as what it covers.
    const index = this.indexKey(session.user_id)
    const capArgs = [tokenHash, String(Date.now()), String(ttlSeconds), String(maxPerUser)]
    if (this.redis.mode !== 'cluster') {
      // One server: the session, the index and the sessions past the cap in one script.
      await this.redis.durable(
        key,
        this.redis.cmd.eval(CREATE_CAPPED, { keys: [key, index], arguments: [...capArgs, value, this.key('')] })
      )
      return
    }
    // Issued together, the two go out at once, each to its node.
    const [, evicted] = await Promise.all([
      this.redis.durable(key, this.redis.cmd.set(key, value, { EX: ttlSeconds })),
      this.redis.durable(
        index,
        this.redis.cmd.eval(INDEX_AND_CAP, { keys: [index], arguments: capArgs }) as Promise<string[]>
      )
    ])
    // One key a command: the evicted sessions live in other slots of a Cluster.
    await Promise.all(evicted.map(async hash => await this.redis.cmd.del(this.key(hash))))
  }

  async deleteAllOf (userId: string): Promise<number> {
    const index = this.indexKey(userId)
    const hashes = await this.redis.cmd.zRange(index, 0, -1)
    let n = 0
    // One key a command: the sessions live in other slots of a Cluster.
    for (const hash of hashes) n += await this.redis.cmd.del(this.key(hash))
    await this.redis.cmd.del(index)
    for (const hash of hashes) await this.redis.replicated(this.key(hash))
    await this.redis.replicated(index)
    return n
  }

  async get (tokenHash: string): Promise<SessionRecord | null> {
    const raw = await this.redis.cmd.get(this.key(tokenHash))
    if (raw === null) return null
    const session = JSON.parse(raw) as Partial<SessionRecord>
    // A session from before user_ids that `pnpm migrate-legacy` has not reached names nobody.
    return typeof session.user_id === 'string' ? (session as SessionRecord) : null
  }

  async delete (tokenHash: string): Promise<boolean> {
    const key = this.key(tokenHash)
    const deleted = (await this.redis.cmd.del(key)) > 0
    // A logout that a failover undoes would bring the session back.
    await this.redis.replicated(key)
    return deleted
  }
}

// Adds the session to the user's index by age and pops the oldest beyond the cap (returned, so
// their records can be deleted); the index lives as long as the newest session.
export const INDEX_AND_CAP = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over <= 0 then return {} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
return oldest
`

// KEYS: the session, the user's index. ARGV: INDEX_AND_CAP's, then the session's value and the
// sessions' key prefix (the evicted sessions' keys are built here: one server, any key).
const CREATE_CAPPED = `
redis.call('SET', KEYS[1], ARGV[5], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over <= 0 then return 0 end
local oldest = redis.call('ZRANGE', KEYS[2], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
for _, h in ipairs(oldest) do redis.call('DEL', ARGV[6] .. h) end
return #oldest
`
