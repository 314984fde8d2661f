import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../keys.js'

/**
 * A spray of forged login codes costs every user of the app: each one is a code2session call,
 * and WeChat's frequency limit (45011) is per app. So failing exchanges are counted per app
 * (a sliding window, cluster-wide) and per client IP; while the app is over its budget, an IP
 * that has failed itself is shed before WeChat is asked. Clients that never failed are served.
 */
export interface CodeFailureOptions {
  /** Failing exchanges per app and window before failing IPs are shed. */
  budget: number
  windowSeconds: number
  /** Failures of one IP in the window that mark it as failing. */
  perIp: number
}

export interface CodeFailureGuard {
  /** True when this IP should be shed now. */
  shed: (appid: string, ip: string) => Promise<boolean>
  record: (appid: string, ip: string) => Promise<void>
}

/** Two fixed windows weighted into a sliding one (the previous counts for what remains of it). */
function sliding (cur: number, prev: number, windowMs: number, now: number): number {
  return cur + prev * (1 - (now % windowMs) / windowMs)
}

export class MemoryCodeFailures implements CodeFailureGuard {
  private readonly counts = new Map<string, number>()
  constructor (private readonly opts: CodeFailureOptions) {}

  private n (key: string): number {
    return this.counts.get(key) ?? 0
  }

  async shed (appid: string, ip: string): Promise<boolean> {
    const windowMs = this.opts.windowSeconds * 1000
    const now = Date.now()
    const w = Math.floor(now / windowMs)
    const app = sliding(this.n(`${appid}:${w}`), this.n(`${appid}:${w - 1}`), windowMs, now)
    return (
      app > this.opts.budget && this.n(`${appid}:${ip}:${w}`) + this.n(`${appid}:${ip}:${w - 1}`) >= this.opts.perIp
    )
  }

  async record (appid: string, ip: string): Promise<void> {
    const w = Math.floor(Date.now() / (this.opts.windowSeconds * 1000))
    for (const key of [`${appid}:${w}`, `${appid}:${ip}:${w}`]) this.counts.set(key, this.n(key) + 1)
    // Only the current and the previous window are ever read.
    for (const key of this.counts.keys()) if (Number(key.split(':').pop()) < w - 1) this.counts.delete(key)
  }
}

// KEYS: the app's current and previous window, the IP's current and previous window (one hash
// slot: the app in braces). ARGV: window ms, now ms, budget, per-IP threshold.
const SHED = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local windowMs = tonumber(ARGV[1])
local app = cur + prev * (1 - (tonumber(ARGV[2]) % windowMs) / windowMs)
if app <= tonumber(ARGV[3]) then return 0 end
local ip = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0')
if ip >= tonumber(ARGV[4]) then return 1 end
return 0
`
const RECORD = `
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
`

export class RedisCodeFailures implements CodeFailureGuard {
  constructor (
    private readonly redis: RedisHandle,
    private readonly names: LoginKeys,
    private readonly opts: CodeFailureOptions
  ) {}

  private keys (appid: string, ip: string, w: number): string[] {
    const { names } = this
    return [
      names.codeFailures(appid, w),
      names.codeFailures(appid, w - 1),
      names.codeFailures(appid, w, ip),
      names.codeFailures(appid, w - 1, ip)
    ]
  }

  async shed (appid: string, ip: string): Promise<boolean> {
    const windowMs = this.opts.windowSeconds * 1000
    const now = Date.now()
    const r = await this.redis.cmd.eval(SHED, {
      keys: this.keys(appid, ip, Math.floor(now / windowMs)),
      arguments: [String(windowMs), String(now), String(this.opts.budget), String(this.opts.perIp)]
    })
    return Number(r) === 1
  }

  async record (appid: string, ip: string): Promise<void> {
    const windowMs = this.opts.windowSeconds * 1000
    const [app, , ipKey] = this.keys(appid, ip, Math.floor(Date.now() / windowMs))
    // Kept for two windows: the next one still reads this one as its previous.
    await this.redis.cmd.eval(RECORD, { keys: [app as string, ipKey as string], arguments: [String(2 * windowMs)] })
  }
}
