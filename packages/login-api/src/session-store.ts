import type { RedisHandle } from '@wxlogin/service-kit'
import { ExpiringMap } from './expiring-map.js'

/**
 * Who a session belongs to, and from which app. The session's key is the SHA-256 of its token,
 * never the token. Sessions from before user_ids have none (see session-auth).
 */
export interface SessionRecord { user_id?: string, appid: string, openid: string }

export interface SessionStore {
  create: (tokenHash: string, session: SessionRecord, ttlSeconds: number) => Promise<void>
  get: (tokenHash: string) => Promise<SessionRecord | null>
  delete: (tokenHash: string) => Promise<boolean>
  /** Ends every session of a user (logout everywhere); how many there were. */
  deleteAllOf: (userId: string) => Promise<number>
}

/** For one replica without Redis. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new ExpiringMap<SessionRecord>()

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number): Promise<void> {
    this.sessions.set(tokenHash, session, ttlSeconds * 1000)
  }

  async get (tokenHash: string): Promise<SessionRecord | null> {
    return this.sessions.get(tokenHash) ?? null
  }

  async delete (tokenHash: string): Promise<boolean> {
    return this.sessions.delete(tokenHash)
  }

  async deleteAllOf (userId: string): Promise<number> {
    const hashes = [...this.sessions].filter(([, s]) => s.user_id === userId).map(([hash]) => hash)
    for (const hash of hashes) this.sessions.delete(hash)
    return hashes.length
  }
}

/**
 * `session:{hash}` per session, and `user-sessions:{user_id}`, the set of a user's session
 * hashes (for logout everywhere), living as long as the user's newest session.
 */
export class RedisSessionStore implements SessionStore {
  constructor (private readonly redis: RedisHandle, private readonly prefix: string) {}

  private key (hash: string): string { return `${this.prefix}session:${hash}` }
  private indexKey (userId: string): string { return `${this.prefix}user-sessions:${userId}` }

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number): Promise<void> {
    const key = this.key(tokenHash)
    // Issued together, the three go out in one pipeline (in a Cluster, to their nodes at once).
    const writes: Array<Promise<unknown>> = [this.redis.cmd.set(key, JSON.stringify(session), { EX: ttlSeconds })]
    if (session.user_id !== undefined) {
      const index = this.indexKey(session.user_id)
      writes.push(this.redis.cmd.sAdd(index, tokenHash), this.redis.cmd.expire(index, ttlSeconds))
    }
    await Promise.all(writes)
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not log the user out.
    await this.redis.replicated(key)
    if (session.user_id !== undefined) await this.redis.replicated(this.indexKey(session.user_id))
  }

  async deleteAllOf (userId: string): Promise<number> {
    const index = this.indexKey(userId)
    const hashes = await this.redis.cmd.sMembers(index)
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
    return raw === null ? null : JSON.parse(raw) as SessionRecord
  }

  async delete (tokenHash: string): Promise<boolean> {
    const key = this.key(tokenHash)
    const deleted = (await this.redis.cmd.del(key)) > 0
    // A logout that a failover undoes would bring the session back.
    await this.redis.replicated(key)
    return deleted
  }
}
