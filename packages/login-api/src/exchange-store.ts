import { type RedisHandle } from '@wxlogin/service-kit'
import { ExpiringMap } from './expiring-map.js'

/**
 * What became of one single-use code: being exchanged by some instance right now, or settled
 * with WeChat's answer (the value, or an error that will not change on a retry).
 */
export type Exchange<T> =
  | { state: 'pending' }
  | { state: 'done', value: T, newUser?: boolean, owner?: string }
  | { state: 'failed', error: { code: string, message: string, status: number, wechatErrcode?: number } }

export type DoneExchange<T> = Extract<Exchange<T>, { state: 'done' }>

/** Exchange records, shared by every instance: keyed by a hash, never the code itself. */
export interface ExchangeStore {
  /** Marks `key` pending for `ttlMs`; true when this caller got it (nobody had it). */
  claim: (key: string, ttlMs: number) => Promise<boolean>
  /** Extends a pending claim by `ttlMs` (its owner is still working); nothing once it is settled. */
  renew: (key: string, ttlMs: number) => Promise<void>
  get: (key: string) => Promise<Exchange<unknown> | null>
  /** Replaces the record (pending → done or failed), living `ttlMs`. */
  settle: (key: string, record: Exchange<unknown>, ttlMs: number) => Promise<void>
  /** Rewrites a settled record and keeps its expiry (nothing if it is gone). */
  annotate: (key: string, record: Exchange<unknown>) => Promise<void>
  /** Removes a pending claim after a failure a retry may not meet (a timeout, a 503). */
  release: (key: string) => Promise<void>
  /** Counts one more answer given from the kept record; the count so far, this one included. */
  countReuse: (key: string) => Promise<number>
  /** Remembers that these exchanges logged `userId` in, for as long as a code lives. */
  track: (userId: string, keys: string[]) => Promise<void>
  /** Turns every kept exchange of the user into a used code (logout everywhere, deletion). */
  revokeAllOf: (userId: string) => Promise<void>
}

/** What a revoked exchange answers: the code is used, as WeChat would say. */
const REVOKED: Exchange<never> = { state: 'failed', error: { code: 'invalid_code', message: 'The login code is invalid, expired or already used; call wx.login() again.', status: 400, wechatErrcode: 40163 } }

export class MemoryExchangeStore implements ExchangeStore {
  private readonly records = new ExpiringMap<Exchange<unknown>>()

  async claim (key: string, ttlMs: number): Promise<boolean> {
    if (this.records.get(key) !== undefined) return false
    this.records.set(key, { state: 'pending' }, ttlMs)
    return true
  }

  async renew (key: string, ttlMs: number): Promise<void> {
    if (this.records.get(key)?.state === 'pending') this.records.set(key, { state: 'pending' }, ttlMs)
  }

  async get (key: string): Promise<Exchange<unknown> | null> { return this.records.get(key) ?? null }
  async settle (key: string, record: Exchange<unknown>, ttlMs: number): Promise<void> { this.records.set(key, record, ttlMs) }
  async annotate (key: string, record: Exchange<unknown>): Promise<void> { this.records.replace(key, record) }
  async release (key: string): Promise<void> {
    if (this.records.get(key)?.state === 'pending') this.records.delete(key)
  }

  private readonly reuses = new ExpiringMap<number>()
  private readonly byUser = new ExpiringMap<string[]>()

  async countReuse (key: string): Promise<number> {
    const n = (this.reuses.get(key) ?? 0) + 1
    this.reuses.set(key, n, CODE_LIFE_MS)
    return n
  }

  async track (userId: string, keys: string[]): Promise<void> {
    this.byUser.set(userId, [...(this.byUser.get(userId) ?? []), ...keys], CODE_LIFE_MS)
  }

  async revokeAllOf (userId: string): Promise<void> {
    for (const key of this.byUser.get(userId) ?? []) this.records.replace(key, REVOKED)
    this.byUser.delete(userId)
  }
}

const RELEASE_PENDING = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
const RENEW_PENDING = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`
const PENDING = JSON.stringify({ state: 'pending' })

export class RedisExchangeStore implements ExchangeStore {
  constructor (private readonly redis: RedisHandle, private readonly prefix: string) {}

  async claim (key: string, ttlMs: number): Promise<boolean> {
    return await this.redis.cmd.set(key, PENDING, { NX: true, PX: ttlMs }) === 'OK'
  }

  async renew (key: string, ttlMs: number): Promise<void> {
    await this.redis.cmd.eval(RENEW_PENDING, { keys: [key], arguments: [PENDING, String(ttlMs)] })
  }

  async get (key: string): Promise<Exchange<unknown> | null> {
    const raw = await this.redis.cmd.get(key)
    if (raw === null) return null
    try {
      const record = JSON.parse(raw) as Exchange<unknown>
      return record.state === 'pending' || record.state === 'done' || record.state === 'failed' ? record : null
    } catch {
      return null
    }
  }

  async settle (key: string, record: Exchange<unknown>, ttlMs: number): Promise<void> {
    await this.redis.cmd.set(key, JSON.stringify(record), { PX: ttlMs })
    // A failover that lost this record would let a retry spend the code again.
    await this.redis.replicated(key)
  }

  async annotate (key: string, record: Exchange<unknown>): Promise<void> {
    await this.redis.cmd.set(key, JSON.stringify(record), { XX: true, KEEPTTL: true })
  }

  async release (key: string): Promise<void> {
    await this.redis.cmd.eval(RELEASE_PENDING, { keys: [key], arguments: [PENDING] })
  }

  async countReuse (key: string): Promise<number> {
    return Number(await this.redis.cmd.eval(COUNT_REUSE, { keys: [`${key}:reuses`], arguments: [String(CODE_LIFE_MS)] }))
  }

  private userKey (userId: string): string { return `${this.prefix}user-exchanges:${userId}` }

  async track (userId: string, keys: string[]): Promise<void> {
    const index = this.userKey(userId)
    await Promise.all([...keys.map(async k => await this.redis.cmd.sAdd(index, k)), this.redis.cmd.expire(index, CODE_LIFE_MS / 1000)])
  }

  async revokeAllOf (userId: string): Promise<void> {
    const index = this.userKey(userId)
    const keys = await this.redis.cmd.sMembers(index)
    // One key a command: the records live in other slots of a Cluster.
    await Promise.all(keys.map(async k => await this.redis.cmd.set(k, JSON.stringify(REVOKED), { XX: true, KEEPTTL: true })))
    await this.redis.cmd.del(index)
    for (const k of keys) await this.redis.replicated(k)
  }
}

const COUNT_REUSE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`

/** WeChat's codes live 5 minutes: a result kept longer could only answer a replay. */
export const CODE_LIFE_MS = 300_000
