import { randomBytes } from 'node:crypto'
import { CGI_PATHS, type Api, type Outcome, type RidRecord } from './apis.js'

/** Daily limits the simulator reports (WeChat publishes some: 2,000 token calls, 500,000 stable). */
const DAILY_LIMITS: Record<string, number> = {
  '/cgi-bin/token': 2000,
  '/cgi-bin/stable_token': 500_000,
  '/cgi-bin/ticket/getticket': 100_000
}
const DEFAULT_DAILY_LIMIT = 100_000
/** clear_quota resets a month (WeChat: 10). */
const CLEARS_PER_MONTH = 10

/** WeChat's quota tools: today's calls per app and API, clear_quota, and openapi/rid/get. */
export class QuotaBook {
  /** Per app and cgi_path, the calls counted against today's quota. */
  private readonly usage = new Map<string, Map<string, number>>()
  private readonly clears = new Map<string, number>()
  private readonly rids = new Map<string, RidRecord>()

  reset (): void {
    this.usage.clear()
    this.clears.clear()
    this.rids.clear()
  }

  use (appid: string, api: Api): void {
    const perApp = this.usage.get(appid) ?? new Map<string, number>()
    perApp.set(CGI_PATHS[api], (perApp.get(CGI_PATHS[api]) ?? 0) + 1)
    this.usage.set(appid, perApp)
  }

  quota (appid: string, cgiPath: unknown): Outcome<{ quota: { daily_limit: number, used: number, remain: number } }> {
    if (typeof cgiPath !== 'string' || !cgiPath.startsWith('/')) return { ok: false, errcode: 76003 }
    this.use(appid, 'quota_get')
    const dailyLimit = DAILY_LIMITS[cgiPath] ?? DEFAULT_DAILY_LIMIT
    const used = this.usage.get(appid)?.get(cgiPath) ?? 0
    return { ok: true, value: { quota: { daily_limit: dailyLimit, used, remain: Math.max(0, dailyLimit - used) } } }
  }

  clear (appid: string): Outcome<true> {
    const used = this.clears.get(appid) ?? 0
    if (used >= CLEARS_PER_MONTH) return { ok: false, errcode: 48006 }
    this.clears.set(appid, used + 1)
    this.usage.delete(appid)
    return { ok: true, value: true }
  }

  recordRid (now: number, record: RidRecord): string {
    const hex = (): string => randomBytes(4).toString('hex')
    const rid = `${Math.floor(now / 1000).toString(16)}-${hex()}-${hex()}`
    this.rids.set(rid, record)
    // Bounded: a load test answered with errors must not grow the simulator without end.
    if (this.rids.size > 10_000) this.rids.delete(this.rids.keys().next().value as string)
    return rid
  }

  rid (appid: string, rid: unknown): Outcome<{ request: RidRecord }> {
    this.use(appid, 'rid_get')
    const record = typeof rid === 'string' ? this.rids.get(rid) : undefined
    if (record === undefined) return { ok: false, errcode: 76001 }
    return { ok: true, value: { request: record } }
  }
}
