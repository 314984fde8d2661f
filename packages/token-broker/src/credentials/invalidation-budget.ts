import type { FastifyBaseLogger } from 'fastify'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'
import { MemoryTokenStore } from '../store/memory-token-store.js'
import type { TokenStore } from '../store/token-store.js'

/** WeChat's quotas reset at midnight in China (UTC+8). */
const WECHAT_DAY_OFFSET_MS = 8 * 3600_000
const DAY_MS = 86_400_000

/** The current WeChat day (YYYY-MM-DD) and the ms until the next one starts. */
export function wechatDay (now = Date.now()): { day: string, leftMs: number } {
  const shifted = now + WECHAT_DAY_OFFSET_MS
  return { day: new Date(shifted).toISOString().slice(0, 10), leftMs: DAY_MS - (shifted % DAY_MS) }
}

export interface InvalidationBudgetOptions {
  store: TokenStore
  metrics: BrokerMetrics
  log: FastifyBaseLogger
  /** Least time between two refreshes caused by invalidations of one app, cluster-wide. */
  intervalMs: number
  /** Refreshes caused by invalidations, per app and WeChat day, cluster-wide. */
  perDay: { stable: number, classic: number }
  /** Clients and the apps they may use: those sharing an app share its budget equally. */
  clients: Array<{ name: string, apps: string[] }>
}

/**
 * A refresh caused by an invalidation spends quota that callers control: forced stable_token
 * refreshes (20 a day) or /cgi-bin/token calls (about 2,000 a day). They are spaced, and
 * counted against a daily budget per app, cluster-wide.
 */
export class InvalidationBudget {
  /** Counts used when Redis cannot be asked: this replica's share, rather than no limit. */
  private readonly localCounts = new MemoryTokenStore()

  constructor (
    private readonly opts: InvalidationBudgetOptions,
    apps: WechatAppConfig[],
    reports: boolean
  ) {
    for (const a of apps) {
      this.modes.set(a.appid, a.tokenMode)
      if (reports) opts.metrics.budgetLimit.set({ appid: a.appid }, opts.perDay[a.tokenMode])
    }
  }

  /** How much of the app's daily budget one client may spend: an equal share among its clients. */
  share (appid: string): number {
    const limit = this.opts.perDay[this.modes.get(appid) ?? 'stable']
    const sharing = this.opts.clients.filter(c => c.apps.includes('*') || c.apps.includes(appid)).length
    return Math.max(1, Math.ceil(limit / Math.max(1, sharing)))
  }

  private readonly modes = new Map<string, 'stable' | 'classic'>()

  /**
   * Resolves when this app may refresh for an invalidation now; throws the refusal otherwise.
   * With `client`, its own share is spent first: one client posting valid tokens to invalidate
   * cannot spend what the others need for their real 40001s.
   */
  async allow (app: WechatAppConfig, client?: string): Promise<void> {
    const { appid } = app
    const interval = this.opts.intervalMs
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
    const limit = this.opts.perDay[app.tokenMode]
    const { day, leftMs } = wechatDay()
    const spend = async (name: string, max: number): Promise<{ used: number, allowed: boolean }> => {
      try {
        return await shared.spend(appid, name, max, leftMs + 3600_000)
      } catch {
        return await this.localCounts.spend(appid, name, max, leftMs + 3600_000)
      }
    }
    const share = this.share(appid)
    if (client !== undefined && share < limit && !(await spend(`${day}:client:${client}`, share)).allowed) {
      this.opts.log.warn(
        { appid, client, share },
        "invalidation refused: this client's share of the daily refresh budget is spent"
      )
      throw errors.budgetExhausted(appid, share, Math.ceil(leftMs / 1000), client)
    }
    const spent = await spend(day, limit)
    this.opts.metrics.budgetUsed.set({ appid }, spent.used)
    if (!spent.allowed) {
      this.opts.log.warn({ appid, limit }, 'invalidation refused: the daily refresh budget is spent')
      throw errors.budgetExhausted(appid, limit, Math.ceil(leftMs / 1000))
    }
  }
}
