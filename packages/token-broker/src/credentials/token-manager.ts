import { EventEmitter, once } from 'node:events'
import { BoundChildren, SingleFlight } from '@wxlogin/service-kit'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'
import { FailureMemory } from './failure-memory.js'
import { InvalidationBudget } from './invalidation-budget.js'
import { RefreshAhead } from './refresh-ahead.js'
import type { ServedToken, TokenManagerOptions } from './credential.js'
import type { RefreshReason, TokenSource } from '../metrics.js'
import type { TokenRecord } from '../store/token-store.js'
import { fetchFromWechat } from './upstream-fetch.js'

export type { Credential, ServedToken, TokenManagerOptions } from './credential.js'

/** A token is not handed out in its last seconds: the caller needs time to use it. */
const MIN_REMAINING_MS = 5000
const WAIT_MIN_MS = 10
const WAIT_MAX_MS = 500

/**
 * The token path: process memory, then the shared store, then WeChat. A refresh is
 * single-flight per app inside the process and lock-guarded across replicas; replicas that
 * lose the lock wait for the winner's token (pub/sub, with polling as the fallback).
 * One manager per credential kind: the access_token, and each ticket type.
 */
export class TokenManager {
  private readonly apps: Map<string, WechatAppConfig>
  private readonly memory = new Map<string, TokenRecord>()
  private readonly inflight = new SingleFlight<string, ServedToken>()
  private readonly failures: FailureMemory
  private readonly budget: InvalidationBudget
  private readonly updates = new EventEmitter()
  private readonly ahead: RefreshAhead
  private readonly kind: string
  private readonly lockResource: string

  constructor (private readonly opts: TokenManagerOptions) {
    this.apps = new Map(opts.apps.map(a => [a.appid, a]))
    this.kind = opts.credential.kind
    this.lockResource = this.kind === 'token' ? '' : this.kind
    this.failures = new FailureMemory(opts.store, opts.failureMemoryMs)
    // Only the access_token's manager reports the budget; tickets refresh with no invalidation.
    this.budget = new InvalidationBudget(
      {
        store: opts.store,
        metrics: opts.metrics,
        log: opts.log,
        intervalMs: opts.forceRefreshIntervalMs,
        perDay: opts.invalidationBudget,
        clients: opts.clients
      },
      opts.apps,
      this.kind === 'token'
    )
    this.updates.setMaxListeners(0)
    this.ahead = new RefreshAhead({
      aheadMs: opts.refreshAheadMs,
      current: appid => this.memory.get(appid),
      busy: appid => this.inflight.has(appid),
      refresh: async appid => await this.refresh(appid, 'ahead')
    })
    opts.store.onUpdate(appid => {
      this.onRemoteUpdate(appid)
    })
  }

  hasApp (appid: string): boolean {
    return this.apps.has(appid)
  }

  /** The app's current record, from the store or memory, never refreshed (null when there is none). */
  async peek (appid: string): Promise<TokenRecord | null> {
    return (await this.readStore(appid)) ?? this.memory.get(appid) ?? null
  }

  getApp (appid: string): WechatAppConfig | undefined {
    return this.apps.get(appid)
  }

  private usable (rec: TokenRecord | null | undefined, now = Date.now()): rec is TokenRecord {
    return rec != null && rec.expiresAt - now > MIN_REMAINING_MS
  }

  /** Adopts `rec` in memory unless memory already holds a newer one. */
  private remember (appid: string, rec: TokenRecord): void {
    const cur = this.memory.get(appid)
    if (cur !== undefined && cur.seq > rec.seq) return
    this.memory.set(appid, rec)
    this.opts.credential.metrics.expiry(appid, Math.floor(rec.expiresAt / 1000))
    this.ahead.held(appid, rec)
  }

  private readonly counters = new BoundChildren<{ inc: () => void }>()

  private count (appid: string, source: TokenSource): void {
    this.counters.get(`${appid}\0${source}`, () => this.opts.credential.metrics.served(appid, source)).inc()
  }

  private onRemoteUpdate (appid: string): void {
    if (!this.apps.has(appid)) return
    this.opts.store
      .get(appid)
      .then(
        rec => {
          if (rec !== null) this.remember(appid, rec)
        },
        () => {}
      )
      .finally(() => {
        this.updates.emit(appid)
      })
  }

  /** The fast path for GET access-token. */
  async getToken (appid: string): Promise<ServedToken> {
    const now = Date.now()
    const mem = this.memory.get(appid)
    if (this.usable(mem, now)) {
      this.count(appid, 'memory')
      this.ahead.maybe(appid, mem, now)
      return { record: mem, source: 'memory' }
    }
    const shared = await this.readStore(appid)
    if (this.usable(shared)) {
      this.remember(appid, shared)
      this.count(appid, 'redis')
      this.ahead.maybe(appid, shared, Date.now())
      return { record: shared, source: 'redis' }
    }
    const served = await this.refresh(appid, 'miss')
    this.count(appid, served.source)
    return served
  }

  /**
   * Compare-and-refresh: only when `stale` is still the current token does anything go
   * upstream; otherwise the current token is the answer.
   */
  async invalidate (appid: string, stale: string, client?: string): Promise<ServedToken> {
    const current = (await this.readStore(appid)) ?? this.memory.get(appid) ?? null
    if (this.usable(current) && current.token !== stale) {
      return this.serveCurrent(appid, current)
    }
    // A refresh already in flight (a miss, say) may hand back the stale token: then go again.
    for (let i = 0; i < 2; i++) {
      const served = await this.refresh(appid, 'invalidated', stale, client)
      if (served.record.token !== stale) {
        this.count(appid, served.source)
        return served
      }
    }
    throw errors.sameTokenAgain()
  }

  /**
   * A WeChat-shaped force_refresh, which names no token: the current token when it is younger
   * than `graceMs` (another caller's force has just replaced it) and WeChat does not refuse it
   * (`verify`: age is no proof that it works), else compare-and-refresh against it. A caller
   * looping on force_refresh gets the same fresh token, not 20 refreshes.
   */
  async forceRefresh (
    appid: string,
    graceMs: number,
    client?: string,
    verify?: (appid: string, token: string) => Promise<string>
  ): Promise<ServedToken> {
    const current = (await this.readStore(appid)) ?? this.memory.get(appid) ?? null
    if (!this.usable(current)) return await this.getToken(appid)
    const young = Date.now() - (current.fetchedAt ?? 0) < graceMs
    if (young && (verify === undefined || (await verify(appid, current.token)) !== 'invalid')) {
      return this.serveCurrent(appid, current)
    }
    return await this.invalidate(appid, current.token, client)
  }

  /** The current token, no refresh: served from the store when it is shared and up. */
  private serveCurrent (appid: string, current: TokenRecord): ServedToken {
    this.remember(appid, current)
    const source = this.opts.store.shared && this.opts.store.available() ? 'redis' : 'memory'
    this.count(appid, source)
    return { record: current, source }
  }

  private async readStore (appid: string): Promise<TokenRecord | null> {
    if (!this.opts.store.available()) return null
    try {
      return await this.opts.store.get(appid)
    } catch {
      return null
    }
  }

  /** Single flight per app inside this process. */
  private async refresh (appid: string, reason: RefreshReason, stale?: string, client?: string): Promise<ServedToken> {
    return await this.inflight.run(appid, async () => await this.refreshAcrossReplicas(appid, reason, stale, client))
  }

  /** True when `rec` makes an upstream call for this reason unnecessary. */
  private satisfies (rec: TokenRecord | null, reason: RefreshReason, stale: string | undefined): rec is TokenRecord {
    if (!this.usable(rec)) return false
    if (reason === 'invalidated') return rec.token !== stale
    if (reason === 'ahead') return rec.expiresAt - Date.now() >= this.opts.refreshAheadMs
    return true
  }

  private async refreshAcrossReplicas (
    appid: string,
    reason: RefreshReason,
    stale: string | undefined,
    client: string | undefined
  ): Promise<ServedToken> {
    const { store, lock } = this.opts
    if (!store.shared || !store.available()) return await this.fetchUpstream(appid, reason, stale, client)

    const started = Date.now()
    const deadline = started + this.opts.waitTimeoutMs
    let pause = WAIT_MIN_MS
    for (;;) {
      const cur = await this.readStore(appid)
      if (this.satisfies(cur, reason, stale)) {
        this.opts.metrics.lockWait.observe((Date.now() - started) / 1000)
        this.remember(appid, cur)
        return { record: cur, source: 'redis' }
      }
      if (!store.available()) return await this.fetchUpstream(appid, reason, stale, client)
      const held = await lock.tryAcquire(appid, this.lockResource)
      if (held === 'unavailable') {
        this.opts.log.warn(
          { appid, kind: this.kind },
          'refresh lock quorum unavailable; refreshing from this replica alone'
        )
        return await this.fetchUpstream(appid, reason, stale, client)
      }
      if (held !== 'busy') {
        this.opts.metrics.lockWait.observe((Date.now() - started) / 1000)
        try {
          // The holder before us may have stored a token between our read and our lock.
          const again = await this.readStore(appid)
          if (this.satisfies(again, reason, stale)) {
            this.remember(appid, again)
            return { record: again, source: 'redis' }
          }
          return await this.fetchUpstream(appid, reason, stale, client)
        } finally {
          await held.release()
        }
      }
      if (Date.now() >= deadline) throw errors.tokenUnavailable(appid)
      await this.waitForUpdate(appid, Math.min(pause, deadline - Date.now()))
      pause = Math.min(pause * 2, WAIT_MAX_MS)
    }
  }

  /** Until another replica's update for this app arrives, or `ms` pass. */
  private async waitForUpdate (appid: string, ms: number): Promise<void> {
    await once(this.updates, appid, { signal: AbortSignal.timeout(Math.max(1, ms)) }).catch(() => {})
  }

  private async fetchUpstream (
    appid: string,
    reason: RefreshReason,
    stale: string | undefined,
    client: string | undefined
  ): Promise<ServedToken> {
    const app = this.apps.get(appid)
    if (app === undefined) throw errors.unknownApp(appid)
    const { failures, budget, kind, opts } = this
    const previous = this.memory.get(appid)
    const rec = await fetchFromWechat({ app, reason, stale, client, previous, kind, opts, failures, budget })
    this.remember(appid, rec)
    return { record: rec, source: 'upstream' }
  }

  /** Stops the schedule and lets in-flight background refreshes finish before the store closes. */
  async drain (): Promise<void> {
    await this.ahead.drain()
  }
}
