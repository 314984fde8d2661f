import { claimOnce, sameOwner, ServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import {
  CODE_LIFE_MS,
  type CountedClaim,
  type Counter,
  type DoneExchange,
  type Exchange,
  type ExchangeStore
} from './exchange-store.js'
import { storeCall } from '../store-call.js'
import type { Identity } from '../users/user-store.js'

export { CODE_LIFE_MS, type DoneExchange, type Exchange, type ExchangeStore } from './exchange-store.js'

/**
 * A claim lives this long unless its owner renews it (every third of it, while it works): an
 * instance that died, or a release that failed while Redis was unreachable, holds a code no
 * longer than this after the fact. The README states the bound a retry can meet.
 */
export const CLAIM_LEASE_MS = 3000

export interface ExchangeOptions<T = unknown> {
  /** How long a request waits for another instance's exchange of the same code. */
  waitMs: number
  /** Errors that settle the code for good (it is invalid): kept, so a retry gets them with no call. */
  final: (error: ServiceError) => boolean
  /**
   * Runs once the code is claimed, before `work` (a limit check): when it throws, the claim is
   * released and the code stays unused. A retry answered from a kept exchange never runs it.
   */
  beforeWork?: () => Promise<void>
  /**
   * Whose answer a kept exchange is: the SHA-256 of the first request's retry_key. A kept answer
   * goes only to a request with the same one; another (or none) gets `replayed()`.
   */
  owner?: { hash: string | undefined, allowNone: boolean, replayed: () => ServiceError }
  /**
   * A limit counted in the claim's own round trip, only when this request claims the code:
   * `verdict` sees the count and throws to refuse (the claim is then already let go).
   */
  limit?: { counter: Counter, verdict: (count: CountedClaim) => void }
  /**
   * Whose the answer is (the openid WeChat answered, or the one the exchange was asked for): the
   * kept answer is indexed under it as it is written, so logout everywhere and deletion take it
   * back even when the login that kept it failed afterwards.
   */
  identity?: (value: T) => Identity
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
  /**
   * The record kept for this exchange (the one written, or the one a retry found): rewritten by
   * annotate, so it keeps its owner (a record without one would refuse the next retry).
   */
  record?: DoneExchange<T>
}

/** `settled` where nothing is being kept: a reused answer, or no exchange at all. */
export const SETTLED: Promise<void> = Promise.resolve()

/**
 * Exchanges a single-use code at most once across every instance: the first request claims it
 * and calls WeChat, a concurrent one waits for that answer (bounded), and a retry within the
 * code's life gets the kept answer with no call. A failure a retry might not meet (a timeout,
 * WeChat busy) releases the claim: the next attempt calls again.
 */
export async function exchangeOnce<T> (
  store: ExchangeStore,
  key: string,
  work: () => Promise<T>,
  opts: ExchangeOptions<T>
): Promise<Exchanged<T>> {
  const outcome = await claimOnce<Exchange<T>>({
    claim: async () => await claimed(store, key, opts),
    look: async () => {
      const record = (await storeCall(store.get(key))) as Exchange<T> | null
      if (record === null) return { state: 'absent' }
      return record.state === 'pending' ? { state: 'pending' } : { state: 'settled', record }
    },
    // A first request claims at once: no round trip spent on a look.
    lookFirst: false,
    waitMs: opts.waitMs,
    busy: () => errors.exchangeInProgress()
  })
  if (outcome.state === 'settled') {
    const record = outcome.record
    if (record.state === 'failed') {
      const e = record.error
      throw new ServiceError(e.code, e.message, e.status, { wechatErrcode: e.wechatErrcode })
    }
    if (record.state === 'done') {
      checkOwner(record, opts.owner)
      return { value: record.value, reused: true, newUser: record.newUser === true, settled: SETTLED, record }
    }
  }
  const lease = setInterval(() => {
    store.renew(key, CLAIM_LEASE_MS).catch(() => {})
  }, CLAIM_LEASE_MS / 3)
  let handedOn = false
  try {
    try {
      await opts.beforeWork?.()
    } catch (err) {
      await store.release(key).catch(() => {})
      throw err
    }
    const result = await runClaimed(store, key, work, opts)
    // The claim stays ours, renewed, until WeChat's answer is kept: a retry meanwhile waits
    // for it rather than spending the code again.
    handedOn = true
    result.settled
      .finally(() => {
        clearInterval(lease)
      })
      .catch(() => {})
    return result
  } finally {
    if (!handedOn) clearInterval(lease)
  }
}

async function claimed<T> (store: ExchangeStore, key: string, opts: ExchangeOptions<T>): Promise<boolean> {
  if (opts.limit === undefined) return await storeCall(store.claim(key, CLAIM_LEASE_MS))
  const count = await storeCall(store.claimCounted(key, CLAIM_LEASE_MS, opts.limit.counter))
  if (count.claimed) opts.limit.verdict(count)
  return count.claimed
}

/**
 * A kept answer is the first caller's: only the same retry_key gets it again. Without this,
 * whoever read a used code in a log, an analytics SDK or a gateway would get the account for
 * as long as the answer is kept.
 */
function checkOwner (record: { owner?: string }, owner: ExchangeOptions['owner']): void {
  if (owner !== undefined && !sameOwner(record.owner, owner.hash, owner.allowNone)) throw owner.replayed()
}

async function runClaimed<T> (
  store: ExchangeStore,
  key: string,
  work: () => Promise<T>,
  opts: ExchangeOptions<T>
): Promise<Exchanged<T>> {
  let value: T
  try {
    value = await work()
  } catch (err) {
    const se = err instanceof ServiceError ? err : null
    if (se !== null && opts.final(se)) {
      await store
        .settle(
          key,
          {
            state: 'failed',
            error: { code: se.code, message: se.message, status: se.statusCode, wechatErrcode: se.wechatErrcode }
          },
          CODE_LIFE_MS
        )
        .catch(() => {})
    } else {
      await store.release(key).catch(() => {})
    }
    throw err
  }
  const done: DoneExchange<T> =
    opts.owner?.hash === undefined ? { state: 'done', value } : { state: 'done', value, owner: opts.owner.hash }
  const settled = storeCall(keep(store, key, done, opts.identity?.(value)))
  // Handled here, awaited by the caller: never an unhandled rejection in between.
  settled.catch(() => {})
  return { value, reused: false, newUser: false, settled, record: done }
}

/**
 * How long WeChat's answer waits in memory for a store that stopped answering mid-exchange (a
 * failover, a frozen master) before the request gives up with a 503. The code is spent and a
 * phone exchange billed by then: without the answer kept, a retry would meet 40163 or 40029.
 */
export const KEEP_PATIENCE_MS = 15_000

/** The answer kept, tried again every 250 ms while the store is away, for KEEP_PATIENCE_MS. */
async function keep (
  store: ExchangeStore,
  key: string,
  record: Exchange<unknown>,
  identity: Identity | undefined
): Promise<void> {
  const deadline = Date.now() + KEEP_PATIENCE_MS
  for (;;) {
    try {
      await store.settle(key, record, CODE_LIFE_MS, identity)
      return
    } catch (err) {
      if (Date.now() + 250 >= deadline) throw err
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  }
}
