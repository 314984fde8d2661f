import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { BoundChildren, ServiceError, SingleFlight } from '@wxlogin/service-kit'
import type { WechatAppConfig } from './config.js'
import { errors } from './errors.js'
import type { BrokerMetrics, RefreshReason, TokenSource } from './metrics.js'
import type { RefreshLock } from './refresh-lock.js'
import { MemoryTokenStore, plausibleFailure, type TokenRecord, type TokenStore } from './token-store.js'
import type { FetchedToken } from './wechat-client.js'

export interface ServedToken { record: TokenRecord, source: TokenSource }

/** What a manager keeps warm: the access_token, or a ticket that is fetched with it. */
export interface Credential {
  /** 'token', 'ticket:jsapi', 'ticket:wx_card': in logs, lock and key names. */
  kind: string
  /** One upstream fetch; `force` asks WeChat for a new value (stable_token's force_refresh). */
  fetch: (app: WechatAppConfig, force: boolean) => Promise<FetchedToken>
  /** This kind's counters: served by source, refreshes by reason and result, expiry. */
  metrics: CredentialMetrics
}

export interface CredentialMetrics {
  served: (appid: string, source: TokenSource) => { inc: () => void }
  refreshed: (appid: string, reason: RefreshReason, result: 'ok' | 'error') => void
  expiry: (appid: string, unixSeconds: number) => void
}

export interface TokenManagerOptions {
  apps: WechatAppConfig[]
  credential: Credential
  store: TokenStore
  lock: RefreshLock
  /** Lock waits and the invalidation budget. */
  metrics: BrokerMetrics
  log: FastifyBaseLogger
  refreshAheadMs: number
  failureMemoryMs: number
  /** How long a caller waits for another replica's refresh before giving up. */
  waitTimeoutMs: number
  /** Least time between two refreshes caused by invalidations of one app, cluster-wide. */
  forceRefreshIntervalMs: number
  /** Refreshes caused by invalidations, per app and WeChat day, cluster-wide. */
  invalidationBudget: { stable: number, classic: number }
}

/** WeChat's quotas reset at midnight in China (UTC+8). */
const WECHAT_DAY_OFFSET_MS = 8 * 3600_000
const DAY_MS = 86_400_000

/** The current WeChat day (YYYY-MM-DD) and the ms until the next one starts. */
export function wechatDay (now = Date.now()): { day: string, leftMs: number } {
  const shifted = now + WECHAT_DAY_OFFSET_MS
  return { day: new Date(shifted).toISOString().slice(0, 10), leftMs: DAY_MS - (shifted % DAY_MS) }
}

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
  private readonly failures = new Map<string, { error: ServiceError, until: number }>()
  private readonly nextAheadAt = new Map<string, number>()
  private readonly updates = new EventEmitter()
  private readonly aheadCooldownMs: number
  private readonly background = new Set<Promise<unknown>>()
  private readonly kind: string
  private readonly lockResource: string

  constructor (private readonly opts: TokenManagerOptions) {
    this.apps = new Map(opts.apps.map(a => [a.appid, a]))
    this.kind = opts.credential.kind
    this.lockResource = this.kind === 'token' ? '' : this.kind
    if (this.kind === 'token') for (const a of opts.apps) opts.metrics.budgetLimit.set({ appid: a.appid }, opts.invalidationBudget[a.tokenMode])
    this.updates.setMaxListeners(0)
    // Stable tokens come back unchanged until WeChat renews them; don't ask again at once.
    this.aheadCooldownMs = Math.max(1000, Math.min(30_000, opts.refreshAheadMs / 10))
    opts.store.onUpdate(appid => { this.onRemoteUpdate(appid) })
  }

  hasApp (appid: string): boolean { return this.apps.has(appid) }
  getApp (appid: string): WechatAppConfig | undefined { return this.apps.get(appid) }

  private usable (rec: TokenRecord | null | undefined, now = Date.now()): rec is TokenRecord {
    return rec != null && rec.expiresAt - now > MIN_REMAINING_MS
  }

  /** Adopts `rec` in memory unless memory already holds a newer one. */
  private remember (appid: string, rec: TokenRecord): void {
    const cur = this.memory.get(appid)
    if (cur !== undefined && cur.seq > rec.seq) return
    this.memory.set(appid, rec)
    this.opts.credential.metrics.expiry(appid, Math.floor(rec.expiresAt / 1000))
    this.scheduleAhead(appid, rec.expiresAt - this.opts.refreshAheadMs - Date.now())
  }

  private readonly aheadTimers = new Map<string, NodeJS.Timeout>()
  private closing = false

  /**
   * Refresh-ahead on a schedule, not only when a request happens to come: an idle broker never
   * lets a token it holds expire. Every replica keeps a timer; the refresh goes through the lock,
   * so one of them calls WeChat and the others take its token. A little jitter spreads them.
   */
  private scheduleAhead (appid: string, inMs: number): void {
    if (this.closing) return
    clearTimeout(this.aheadTimers.get(appid))
    const delay = Math.max(this.aheadCooldownMs, inMs) + Math.floor(Math.random() * 500)
    const timer = setTimeout(() => {
      // Try again later should this refresh fail or bring back the same token; a new token
      // reschedules through remember().
      this.scheduleAhead(appid, this.aheadCooldownMs)
      const rec = this.memory.get(appid)
      if (rec !== undefined) this.maybeRefreshAhead(appid, rec, Date.now())
    }, delay)
    timer.unref()
    this.aheadTimers.set(appid, timer)
  }

  private readonly counters = new BoundChildren<{ inc: () => void }>()

  private count (appid: string, source: TokenSource): void {
    this.counters.get(`${appid}\0${source}`, () => this.opts.credential.metrics.served(appid, source)).inc()
  }

  private onRemoteUpdate (appid: string): void {
    if (!this.apps.has(appid)) return
    this.opts.store.get(appid).then(rec => {
      if (rec !== null) this.remember(appid, rec)
    }, () => {}).finally(() => { this.updates.emit(appid) })
  }

  /** The fast path for GET access-token. */
  async getToken (appid: string): Promise<ServedToken> {
    const now = Date.now()
    const mem = this.memory.get(appid)
    if (this.usable(mem, now)) {
      this.count(appid, 'memory')
      this.maybeRefreshAhead(appid, mem, now)
      return { record: mem, source: 'memory' }
    }
    const shared = await this.readStore(appid)
    if (this.usable(shared)) {
      this.remember(appid, shared)
      this.count(appid, 'redis')
      this.maybeRefreshAhead(appid, shared, Date.now())
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
  async invalidate (appid: string, stale: string): Promise<ServedToken> {
    const current = (await this.readStore(appid)) ?? this.memory.get(appid) ?? null
    if (this.usable(current) && current.token !== stale) {
      this.remember(appid, current)
      const source = this.opts.store.shared && this.opts.store.available() ? 'redis' : 'memory'
      this.count(appid, source)
      return { record: current, source }
    }
    // A refresh already in flight (a miss, say) may hand back the stale token: then go again.
    for (let i = 0; i < 2; i++) {
      const served = await this.refresh(appid, 'invalidated', stale)
      if (served.record.token !== stale) {
        this.count(appid, served.source)
        return served
      }
    }
    throw errors.sameTokenAgain()
  }

  /**
   * A WeChat-shaped force_refresh, which names no token: the current token when it is younger
   * than `graceMs` (another caller's force has just replaced it), else compare-and-refresh
   * against it. A caller looping on force_refresh gets the same fresh token, not 20 refreshes.
   */
  async forceRefresh (appid: string, graceMs: number): Promise<ServedToken> {
    const current = (await this.readStore(appid)) ?? this.memory.get(appid) ?? null
    if (!this.usable(current)) return await this.getToken(appid)
    if (Date.now() - (current.fetchedAt ?? 0) < graceMs) {
      this.remember(appid, current)
      const source = this.opts.store.shared && this.opts.store.available() ? 'redis' : 'memory'
      this.count(appid, source)
      return { record: current, source }
    }
    return await this.invalidate(appid, current.token)
  }

  private async readStore (appid: string): Promise<TokenRecord | null> {
    if (!this.opts.store.available()) return null
    try {
      return await this.opts.store.get(appid)
    } catch {
      return null
    }
  }

  private maybeRefreshAhead (appid: string, rec: TokenRecord, now: number): void {
    if (rec.expiresAt - now >= this.opts.refreshAheadMs) return
    if (this.inflight.has(appid) || now < (this.nextAheadAt.get(appid) ?? 0)) return
    this.nextAheadAt.set(appid, now + this.aheadCooldownMs)
    const p: Promise<unknown> = this.refresh(appid, 'ahead')
      .catch(() => { /* a failed upstream call was counted and logged in fetchUpstream */ })
      .finally(() => this.background.delete(p))
    this.background.add(p)
  }

  /** Single flight per app inside this process. */
  private async refresh (appid: string, reason: RefreshReason, stale?: string): Promise<ServedToken> {
    return await this.inflight.run(appid, async () => await this.refreshAcrossReplicas(appid, reason, stale))
  }

  /** True when `rec` makes an upstream call for this reason unnecessary. */
  private satisfies (rec: TokenRecord | null, reason: RefreshReason, stale: string | undefined): rec is TokenRecord {
    if (!this.usable(rec)) return false
    if (reason === 'invalidated') return rec.token !== stale
    if (reason === 'ahead') return rec.expiresAt - Date.now() >= this.opts.refreshAheadMs
    return true
  }

  private async refreshAcrossReplicas (appid: string, reason: RefreshReason, stale: string | undefined): Promise<ServedToken> {
    const { store, lock } = this.opts
    if (!store.shared || !store.available()) return await this.fetchUpstream(appid, reason, stale)

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
      if (!store.available()) return await this.fetchUpstream(appid, reason, stale)
      const held = await lock.tryAcquire(appid, this.lockResource)
      if (held === 'unavailable') {
        this.opts.log.warn({ appid, kind: this.kind }, 'refresh lock quorum unavailable; refreshing from this replica alone')
        return await this.fetchUpstream(appid, reason, stale)
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
          return await this.fetchUpstream(appid, reason, stale)
        } finally {
          await held.release()
        }
      }
      if (Date.now() >= deadline) throw errors.tokenUnavailable(appid)
      await this.waitForUpdate(appid, Math.min(pause, deadline - Date.now()))
      pause = Math.min(pause * 2, WAIT_MAX_MS)
    }
  }

  private async waitForUpdate (appid: string, ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.updates.off(appid, done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(1, ms))
      this.updates.on(appid, done)
    })
  }

  /** A failure this replica or, through the store, any replica remembers. */
  private async rememberedFailure (appid: string): Promise<ServiceError | null> {
    const local = this.failures.get(appid)
    if (local !== undefined && local.until > Date.now()) return local.error
    if (!this.opts.store.shared || !this.opts.store.available() || this.opts.failureMemoryMs <= 0) return null
    try {
      const f = await this.opts.store.recentFailure(appid)
      return f === null ? null : new ServiceError(f.code, f.message, f.status, { wechatErrcode: f.wechatErrcode })
    } catch {
      return null
    }
  }

  private async rememberFailure (appid: string, error: ServiceError): Promise<void> {
    const ttl = this.opts.failureMemoryMs
    if (ttl <= 0) return
    this.failures.set(appid, { error, until: Date.now() + ttl })
    const failure = { code: error.code, message: error.message, status: error.statusCode, ...(error.wechatErrcode !== undefined ? { wechatErrcode: error.wechatErrcode } : {}) }
    if (!this.opts.store.shared || !this.opts.store.available() || !plausibleFailure(failure)) return
    try {
      await this.opts.store.rememberFailure(appid, failure, ttl)
      // Replicas waiting for this refresh learn of it now rather than at their next poll.
      await this.opts.store.publish(appid)
    } catch { /* this replica still remembers it */ }
  }

  private async fetchUpstream (appid: string, reason: RefreshReason, stale: string | undefined): Promise<ServedToken> {
    const app = this.apps.get(appid)
    if (app === undefined) throw errors.unknownApp(appid)
    const remembered = await this.rememberedFailure(appid)
    if (remembered !== null) throw remembered

    const { store, log } = this.opts
    let seq: number
    try {
      seq = store.available() ? await store.nextSeq(appid) : Date.now()
    } catch {
      seq = Date.now()
    }
    // A stable token survives a normal-mode call: a rejected one can only be replaced by force.
    const force = reason === 'invalidated' && app.tokenMode === 'stable'
    if (reason === 'invalidated') await this.allowInvalidationRefresh(app)
    const requestedAt = Date.now()
    let rec: TokenRecord
    try {
      const fetched = await this.opts.credential.fetch(app, force)
      const previous = this.memory.get(appid)
      // WeChat handing back the token we hold (stable mode, normal call) does not make it newer.
      const fetchedAt = previous?.token === fetched.token ? (previous.fetchedAt ?? requestedAt) : requestedAt
      rec = { token: fetched.token, expiresAt: requestedAt + fetched.expiresInSeconds * 1000, seq, fetchedAt }
    } catch (err) {
      const error = err instanceof ServiceError ? err : errors.upstreamUnavailable('unexpected error', undefined, err)
      this.opts.credential.metrics.refreshed(appid, reason, 'error')
      log.error({ appid, kind: this.kind, reason, error: error.code, wechat_errcode: error.wechatErrcode }, 'refresh failed')
      await this.rememberFailure(appid, error)
      throw error
    }
    this.failures.delete(appid)
    this.opts.credential.metrics.refreshed(appid, reason, 'ok')
    log.info({ appid, kind: this.kind, reason, expiresInSeconds: Math.round((rec.expiresAt - requestedAt) / 1000) }, 'refreshed')

    if (store.available()) {
      try {
        const accepted = await store.setIfNewer(appid, rec)
        if (!accepted) {
          // A newer refresh won while ours was in flight: serve its token, not ours.
          const newer = await store.get(appid)
          if (newer !== null) rec = newer
        }
        await store.publish(appid)
      } catch {
        log.warn({ appid, kind: this.kind }, 'could not store the refreshed value in Redis; serving it from memory')
      }
    }
    this.remember(appid, rec)
    return { record: rec, source: 'upstream' }
  }

  /** Counts used when Redis cannot be asked: this replica's share, rather than no limit. */
  private readonly localCounts = new MemoryTokenStore()

  /**
   * A refresh caused by an invalidation spends quota that callers control: forced stable_token
   * refreshes (20 a day) or /cgi-bin/token calls (about 2,000 a day). They are spaced, and
   * counted against a daily budget per app, cluster-wide.
   */
  private async allowInvalidationRefresh (app: WechatAppConfig): Promise<void> {
    const { appid } = app
    const interval = this.opts.forceRefreshIntervalMs
    const shared = this.opts.store.available() ? this.opts.store : this.localCounts
    if (interval > 0) {
      let first: boolean
      try {
        first = await shared.claim(appid, 'invalidate', interval)
      } catch {
        first = await this.localCounts.claim(appid, 'invalidate', interval)
      }
      if (!first) throw errors.forceRefreshThrottled(appid, Math.ceil(interval / 1000))
    }
    const limit = this.opts.invalidationBudget[app.tokenMode]
    const { day, leftMs } = wechatDay()
    let spent: { used: number, allowed: boolean }
    try {
      spent = await shared.spend(appid, day, limit, leftMs + 3600_000)
    } catch {
      spent = await this.localCounts.spend(appid, day, limit, leftMs + 3600_000)
    }
    this.opts.metrics.budgetUsed.set({ appid }, spent.used)
    if (!spent.allowed) {
      this.opts.log.warn({ appid, limit }, 'invalidation refused: the daily refresh budget is spent')
      throw errors.budgetExhausted(appid, limit, Math.ceil(leftMs / 1000))
    }
  }

  /** Stops the schedule and lets in-flight background refreshes finish before the store closes. */
  async drain (): Promise<void> {
    this.closing = true
    for (const timer of this.aheadTimers.values()) clearTimeout(timer)
    await Promise.allSettled([...this.background])
  }
}
