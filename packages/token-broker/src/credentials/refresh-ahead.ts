import type { TokenRecord } from '../store/token-store.js'

export interface RefreshAheadOptions {
  /** Refresh when less life than this remains. */
  aheadMs: number
  /** The record held in memory now, if any. */
  current: (appid: string) => TokenRecord | undefined
  /** True while a refresh of this app is already running in this process. */
  busy: (appid: string) => boolean
  /** Starts a refresh for reason 'ahead'; its failure is counted and logged by the caller. */
  refresh: (appid: string) => Promise<unknown>
}

/**
 * When to refresh ahead of expiry: on a request that sees a token near its end, and on a
 * schedule, so an idle broker never lets a token it holds expire. Every replica keeps a timer;
 * the refresh goes through the lock, so one of them calls WeChat and the others take its token.
 * A little jitter spreads them.
 */
export class RefreshAhead {
  private readonly nextAt = new Map<string, number>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly running = new Set<Promise<unknown>>()
  /** Stable tokens come back unchanged until WeChat renews them; don't ask again at once. */
  private readonly cooldownMs: number
  private closing = false

  constructor (private readonly opts: RefreshAheadOptions) {
    this.cooldownMs = Math.max(1000, Math.min(30_000, opts.aheadMs / 10))
  }

  /** A new record is held: plan its refresh. */
  held (appid: string, rec: TokenRecord): void {
    this.schedule(appid, rec.expiresAt - this.opts.aheadMs - Date.now())
  }

  private schedule (appid: string, inMs: number): void {
    if (this.closing) return
    clearTimeout(this.timers.get(appid))
    const delay = Math.max(this.cooldownMs, inMs) + Math.floor(Math.random() * 500)
    const timer = setTimeout(() => {
      // Try again later should this refresh fail or bring back the same token; a new token
      // reschedules through held().
      this.schedule(appid, this.cooldownMs)
      const rec = this.opts.current(appid)
      if (rec !== undefined) this.maybe(appid, rec, Date.now())
    }, delay)
    timer.unref()
    this.timers.set(appid, timer)
  }

  /** Starts a background refresh when `rec` is near its end and none is running or just ran. */
  maybe (appid: string, rec: TokenRecord, now: number): void {
    if (rec.expiresAt - now >= this.opts.aheadMs) return
    if (this.opts.busy(appid) || now < (this.nextAt.get(appid) ?? 0)) return
    this.nextAt.set(appid, now + this.cooldownMs)
    const p: Promise<unknown> = this.opts
      .refresh(appid)
      .catch(() => {
        /* counted and logged where the upstream call failed */
      })
      .finally(() => this.running.delete(p))
    this.running.add(p)
  }

  /** Stops the schedule and waits for the refreshes that are running. */
  async drain (): Promise<void> {
    this.closing = true
    for (const timer of this.timers.values()) clearTimeout(timer)
    await Promise.allSettled([...this.running])
  }
}
