import { ExpiringMap, keySlot, type RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../keys.js'
import type { Identity } from '../users/user-record.js'

/**
 * What became of one single-use code: being exchanged by some instance right now, or settled
 * with WeChat's answer (the value, or an error that will not change on a retry).
 */
export type Exchange<T> =
  | { state: 'pending' }
  | { state: 'done', value: T, newUser?: boolean, owner?: string }
  | { state: 'failed', error: { code: string, message: string, status: number, wechatErrcode?: number } }

/** A limit counted with a claim: `key` counts up to `max` in a window of `windowMs`. */
export interface Counter {
  key: string
  windowMs: number
  max: number
}
/** claimed: this caller holds the code; current/ttlMs: the counter after this claim (0 when not counted). */
export interface CountedClaim {
  claimed: boolean
  current: number
  ttlMs: number
}

export type DoneExchange<T> = Extract<Exchange<T>, { state: 'done' }>

/** Exchange records, shared by every instance: keyed by a hash, never the code itself. */
export interface ExchangeStore {
  /** Marks `key` pending for `ttlMs`; true when this caller got it (nobody had it). */
  claim: (key: string, ttlMs: number) => Promise<boolean>
  /**
   * claim, and when this caller got it, one more on `counter` (a fixed window of `windowMs` from
   * its first count); over `max`, the claim is let go at once and the code stays unused.
   */
  claimCounted: (key: string, ttlMs: number, counter: Counter) => Promise<CountedClaim>
  /** Extends a pending claim by `ttlMs` (its owner is still working); nothing once it is settled. */
  renew: (key: string, ttlMs: number) => Promise<void>
  get: (key: string) => Promise<Exchange<unknown> | null>
  /**
   * Replaces the record (pending → done or failed), living `ttlMs`. With `identity` (whose login
   * or phone the answer is), the record is indexed under it in the same write: logout everywhere
   * and deletion take it back even when the login that kept it never committed.
   */
  settle: (key: string, record: Exchange<unknown>, ttlMs: number, identity?: Identity) => Promise<void>
  /** Rewrites a settled record and keeps its expiry (nothing if it is gone). */
  annotate: (key: string, record: Exchange<unknown>) => Promise<void>
  /** Removes a pending claim after a failure a retry may not meet (a timeout, a 503). */
  release: (key: string) => Promise<void>
  /** Counts one more answer given from the kept record; the count so far, this one included. */
  countReuse: (key: string) => Promise<number>
  /** Turns every kept exchange of these identities into a used code (logout everywhere, deletion). */
  revokeAllOf: (identities: Identity[]) => Promise<void>
  /** Forgets these counters (claimCounted's): a deleted user's limits go with the user. */
  dropCounters: (keys: string[]) => Promise<void>
}

/** What a revoked exchange answers: the code is used, as WeChat would say of it. */
const REVOKED_LOGIN: Exchange<never> = {
  state: 'failed',
  error: {
    code: 'invalid_code',
    message: 'The login code is invalid, expired or already used; call wx.login() again.',
    status: 400,
    wechatErrcode: 40163
  }
}
const REVOKED_PHONE: Exchange<never> = {
  state: 'failed',
  error: {
    code: 'invalid_phone_code',
    message: 'The phoneCode is invalid, expired or already used; ask the user to tap the button again.',
    status: 400,
    wechatErrcode: 40029
  }
}
/** What a kept exchange becomes when it is taken back: a used code of its kind. */
const revokedFor = (keys: LoginKeys, key: string): string =>
  JSON.stringify(keys.isPhoneExchange(key) ? REVOKED_PHONE : REVOKED_LOGIN)

export class MemoryExchangeStore implements ExchangeStore {
  private readonly records = new ExpiringMap<Exchange<unknown>>()

  constructor (private readonly keys: LoginKeys) {}

  async claim (key: string, ttlMs: number): Promise<boolean> {
    if (this.records.get(key) !== undefined) return false
    this.records.set(key, { state: 'pending' }, ttlMs)
    return true
  }

  private readonly counters = new ExpiringMap<{ n: number, until: number }>()

  async claimCounted (key: string, ttlMs: number, counter: Counter): Promise<CountedClaim> {
    if (!(await this.claim(key, ttlMs))) return { claimed: false, current: 0, ttlMs: 0 }
    const now = Date.now()
    const c = this.counters.get(counter.key) ?? { n: 0, until: now + counter.windowMs }
    c.n++
    this.counters.set(counter.key, c, c.until - now)
    if (c.n > counter.max) await this.release(key)
    return { claimed: true, current: c.n, ttlMs: c.until - now }
  }

  async renew (key: string, ttlMs: number): Promise<void> {
    if (this.records.get(key)?.state === 'pending') this.records.set(key, { state: 'pending' }, ttlMs)
  }

  async get (key: string): Promise<Exchange<unknown> | null> {
    return this.records.get(key) ?? null
  }

  async settle (key: string, record: Exchange<unknown>, ttlMs: number, identity?: Identity): Promise<void> {
    this.records.set(key, record, ttlMs)
    if (identity === undefined) return
    const name = this.keys.identityExchanges(identity.appid, identity.openid)
    this.byIdentity.set(name, [...(this.byIdentity.get(name) ?? []), key], CODE_LIFE_MS)
  }

  async annotate (key: string, record: Exchange<unknown>): Promise<void> {
    this.records.replace(key, record)
  }

  async release (key: string): Promise<void> {
    if (this.records.get(key)?.state === 'pending') this.records.delete(key)
  }

  private readonly reuses = new ExpiringMap<number>()
  private readonly byIdentity = new ExpiringMap<string[]>()

  async countReuse (key: string): Promise<number> {
    const n = (this.reuses.get(key) ?? 0) + 1
    this.reuses.set(key, n, CODE_LIFE_MS)
    return n
  }

  async dropCounters (keys: string[]): Promise<void> {
    for (const key of keys) this.counters.delete(key)
  }

  async revokeAllOf (identities: Identity[]): Promise<void> {
    for (const name of identities.map(i => this.keys.identityExchanges(i.appid, i.openid))) {
      for (const key of this.byIdentity.get(name) ?? []) {
        this.records.replace(key, JSON.parse(revokedFor(this.keys, key)) as Exchange<never>)
      }
      this.byIdentity.delete(name)
    }
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

// A fixed window from the first count, as @fastify/rate-limit counts: sets current and ttl (ms).
const counting = (key: string, windowMs: string): string => `
local current = redis.call('INCR', ${key})
local ttl = redis.call('PTTL', ${key})
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', ${key}, ${windowMs})
  ttl = tonumber(${windowMs})
end`
const COUNT = `${counting('KEYS[1]', 'ARGV[1]')}
return { current, ttl }
`
// KEYS: the claim, the counter. ARGV: pending record, claim ms, window ms, max.
const CLAIM_COUNTED = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return { 0, 0, 0 } end
${counting('KEYS[2]', 'ARGV[3]')}
if current > tonumber(ARGV[4]) then redis.call('DEL', KEYS[1]) end
return { 1, current, ttl }
`

export class RedisExchangeStore implements ExchangeStore {
  constructor (
    private readonly redis: RedisHandle,
    private readonly keys: LoginKeys
  ) {}

  async claim (key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.cmd.set(key, PENDING, { NX: true, PX: ttlMs })) === 'OK'
  }

  async claimCounted (key: string, ttlMs: number, counter: Counter): Promise<CountedClaim> {
    const args = [PENDING, String(ttlMs), String(counter.windowMs), String(counter.max)]
    if (this.redis.mode !== 'cluster' || keySlot(key) === keySlot(counter.key)) {
      // One script, one round trip: the two keys are on one server (in one slot).
      const [claimed, current, ttl] = (await this.redis.cmd.eval(CLAIM_COUNTED, {
        keys: [key, counter.key],
        arguments: args
      })) as number[]
      return { claimed: claimed === 1, current: Number(current), ttlMs: Number(ttl) }
    }
    // In two slots of a Cluster: the claim first, counted only when it is ours.
    if (!(await this.claim(key, ttlMs))) return { claimed: false, current: 0, ttlMs: 0 }
    const [current, ttl] = (await this.redis.cmd.eval(COUNT, {
      keys: [counter.key],
      arguments: [args[2] as string]
    })) as number[]
    if (Number(current) > counter.max) await this.release(key)
    return { claimed: true, current: Number(current), ttlMs: Number(ttl) }
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

  async settle (key: string, record: Exchange<unknown>, ttlMs: number, identity?: Identity): Promise<void> {
    // A failover that lost this record would let a retry spend the code again.
    const kept = this.redis.durable(key, this.redis.cmd.set(key, JSON.stringify(record), { PX: ttlMs }))
    if (identity === undefined) {
      await kept
      return
    }
    // Issued together (one write; in a Cluster, to both nodes at once), each retried with the other.
    const index = this.identityKey(identity)
    await Promise.all([
      kept,
      this.redis.cmd.sAdd(index, key),
      this.redis.durable(index, this.redis.cmd.pExpire(index, CODE_LIFE_MS))
    ])
  }

  async annotate (key: string, record: Exchange<unknown>): Promise<void> {
    await this.redis.cmd.set(key, JSON.stringify(record), { XX: true, KEEPTTL: true })
  }

  async release (key: string): Promise<void> {
    await this.redis.cmd.eval(RELEASE_PENDING, { keys: [key], arguments: [PENDING] })
  }

  async countReuse (key: string): Promise<number> {
    return Number(
      await this.redis.cmd.eval(COUNT_REUSE, {
        keys: [this.keys.exchangeReuses(key)],
        arguments: [String(CODE_LIFE_MS)]
      })
    )
  }

  private identityKey (i: Identity): string {
    return this.keys.identityExchanges(i.appid, i.openid)
  }

  async dropCounters (keys: string[]): Promise<void> {
    // One key a command: the counters live in other slots of a Cluster.
    await Promise.all(keys.map(async key => await this.redis.cmd.del(key)))
    for (const key of keys) await this.redis.replicated(key)
  }

  async revokeAllOf (identities: Identity[]): Promise<void> {
    await Promise.all(
      identities.map(async identity => {
        const index = this.identityKey(identity)
        const keys = await this.redis.cmd.sMembers(index)
        // One key a command: the records live in other slots of a Cluster.
        await Promise.all(
          keys.map(async k => await this.redis.cmd.set(k, revokedFor(this.keys, k), { XX: true, KEEPTTL: true }))
        )
        await this.redis.cmd.del(index)
        for (const k of keys) await this.redis.replicated(k)
        await this.redis.replicated(index)
      })
    )
  }
}

const COUNT_REUSE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`

/** WeChat's codes live 5 minutes: a result kept longer could only answer a replay. */
export const CODE_LIFE_MS = 300_000
