import { ServiceError, sha256Hex, type RedisHandle } from '@wxlogin/service-kit'
import { errors } from './errors.js'
import { ExpiringMap } from './expiring-map.js'
import { storeCall } from './store-call.js'

/**
 * What became of one single-use code: being exchanged by some instance right now, or settled
 * with WeChat's answer (the value, or an error that will not change on a retry).
 */
export type Exchange<T> =
  | { state: 'pending' }
  | { state: 'done', value: T, newUser?: boolean }
  | { state: 'failed', error: { code: string, message: string, status: number, wechatErrcode?: number } }

/** Exchange records, shared by every instance: keyed by a hash, never the code itself. */
export interface ExchangeStore {
  /** Marks `key` pending for `ttlMs`; true when this caller got it (nobody had it). */
  claim: (key: string, ttlMs: number) => Promise<boolean>
  get: (key: string) => Promise<Exchange<unknown> | null>
  /** Replaces the record (pending → done or failed), living `ttlMs`. */
  settle: (key: string, record: Exchange<unknown>, ttlMs: number) => Promise<void>
  /** Rewrites a settled record and keeps its expiry (nothing if it is gone). */
  annotate: (key: string, record: Exchange<unknown>) => Promise<void>
  /** Removes a pending claim after a failure a retry may not meet (a timeout, a 503). */
  release: (key: string) => Promise<void>
}

export class MemoryExchangeStore implements ExchangeStore {
  private readonly records = new ExpiringMap<Exchange<unknown>>()

  async claim (key: string, ttlMs: number): Promise<boolean> {
    if (this.records.get(key) !== undefined) return false
    this.records.set(key, { state: 'pending' }, ttlMs)
    return true
  }

  async get (key: string): Promise<Exchange<unknown> | null> { return this.records.get(key) ?? null }
  async settle (key: string, record: Exchange<unknown>, ttlMs: number): Promise<void> { this.records.set(key, record, ttlMs) }
  async annotate (key: string, record: Exchange<unknown>): Promise<void> { this.records.replace(key, record) }
  async release (key: string): Promise<void> {
    if (this.records.get(key)?.state === 'pending') this.records.delete(key)
  }
}

const RELEASE_PENDING = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
const PENDING = JSON.stringify({ state: 'pending' })

export class RedisExchangeStore implements ExchangeStore {
  constructor (private readonly redis: RedisHandle) {}

  async claim (key: string, ttlMs: number): Promise<boolean> {
    return await this.redis.cmd.set(key, PENDING, { NX: true, PX: ttlMs }) === 'OK'
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
}

/** WeChat's codes live 5 minutes: a result kept longer could only answer a replay. */
export const CODE_LIFE_MS = 300_000

export interface ExchangeOptions {
  /** How long a claim outlives an instance that died while exchanging: its worst-case call. */
  pendingTtlMs: number
  /** How long a request waits for another instance's exchange of the same code. */
  waitMs: number
  /** Errors that settle the code for good (it is invalid): kept, so a retry gets them with no call. */
  final: (error: ServiceError) => boolean
  /**
   * Runs once the code is claimed, before `work` (a limit check): when it throws, the claim is
   * released and the code stays unused. A retry answered from a kept exchange never runs it.
   */
  beforeWork?: () => Promise<void>
}

export interface Exchanged<T> {
  value: T
  reused: boolean
  newUser: boolean
  /**
   * The answer being kept for retries: the caller goes on (its next store command rides in the
   * same write) and awaits this before it answers. Rejected with store_unavailable.
   */
  settled: Promise<void>
}

/** `settled` where nothing is being kept: a reused answer, or no exchange at all. */
export const SETTLED: Promise<void> = Promise.resolve()

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/**
 * Exchanges a single-use code at most once across every instance: the first request claims it
 * and calls WeChat, a concurrent one waits for that answer (bounded), and a retry within the
 * code's life gets the kept answer with no call. A failure a retry might not meet (a timeout,
 * WeChat busy) releases the claim: the next attempt calls again.
 */
export async function exchangeOnce<T> (store: ExchangeStore, key: string, work: () => Promise<T>, opts: ExchangeOptions): Promise<Exchanged<T>> {
  const deadline = Date.now() + opts.waitMs
  let pause = 20
  for (;;) {
    if (await storeCall(store.claim(key, opts.pendingTtlMs))) {
      try {
        await opts.beforeWork?.()
      } catch (err) {
        await store.release(key).catch(() => {})
        throw err
      }
      return await runClaimed(store, key, work, opts)
    }
    const record = await storeCall(store.get(key)) as Exchange<T> | null
    if (record?.state === 'done') return { value: record.value, reused: true, newUser: record.newUser === true, settled: SETTLED }
    if (record?.state === 'failed') {
      const e = record.error
      throw new ServiceError(e.code, e.message, e.status, { wechatErrcode: e.wechatErrcode })
    }
    // null: released or expired in between; claim again.
    if (record !== null && Date.now() >= deadline) throw errors.exchangeInProgress()
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())))
    pause = Math.min(pause * 2, 200)
  }
}

async function runClaimed<T> (store: ExchangeStore, key: string, work: () => Promise<T>, opts: ExchangeOptions): Promise<Exchanged<T>> {
  let value: T
  try {
    value = await work()
  } catch (err) {
    const se = err instanceof ServiceError ? err : null
    if (se !== null && opts.final(se)) {
      await store.settle(key, { state: 'failed', error: { code: se.code, message: se.message, status: se.statusCode, wechatErrcode: se.wechatErrcode } }, CODE_LIFE_MS).catch(() => {})
    } else {
      await store.release(key).catch(() => {})
    }
    throw err
  }
  const settled = storeCall(store.settle(key, { state: 'done', value }, CODE_LIFE_MS))
  // Handled here, awaited by the caller: never an unhandled rejection in between.
  settled.catch(() => {})
  return { value, reused: false, newUser: false, settled }
}

/** The key of a code's exchange: a hash of what identifies it, never the code itself. */
export function exchangeKey (prefix: string, kind: 'login' | 'phone', ...parts: string[]): string {
  return `${prefix}exchange:${kind}:${sha256Hex(parts.join('\0'))}`
}
