import type { RedisHandle } from '@wxlogin/service-kit'

/** Who a session belongs to. The session's key is the SHA-256 of its token, never the token. */
export interface SessionRecord { appid: string, openid: string }

export interface SessionStore {
  create: (tokenHash: string, session: SessionRecord, ttlSeconds: number) => Promise<void>
  get: (tokenHash: string) => Promise<SessionRecord | null>
  delete: (tokenHash: string) => Promise<boolean>
}

/** For one replica without Redis. Sessions expire lazily and on a sweep. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, { session: SessionRecord, expiresAt: number }>()

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number): Promise<void> {
    this.sweep()
    this.sessions.set(tokenHash, { session, expiresAt: Date.now() + ttlSeconds * 1000 })
  }

  async get (tokenHash: string): Promise<SessionRecord | null> {
    const entry = this.sessions.get(tokenHash)
    if (entry === undefined) return null
    if (entry.expiresAt <= Date.now()) {
      this.sessions.delete(tokenHash)
      return null
    }
    return entry.session
  }

  async delete (tokenHash: string): Promise<boolean> {
    return this.sessions.delete(tokenHash)
  }

  private sweep (): void {
    if (this.sessions.size < 10_000) return
    const now = Date.now()
    for (const [k, v] of this.sessions) if (v.expiresAt <= now) this.sessions.delete(k)
  }
}

export class RedisSessionStore implements SessionStore {
  constructor (private readonly redis: RedisHandle, private readonly prefix: string) {}

  private key (hash: string): string { return `${this.prefix}session:${hash}` }

  async create (tokenHash: string, session: SessionRecord, ttlSeconds: number): Promise<void> {
    const key = this.key(tokenHash)
    await this.redis.cmd.set(key, JSON.stringify(session), { EX: ttlSeconds })
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): a failover must not log the user out.
    await this.redis.replicated(key)
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
