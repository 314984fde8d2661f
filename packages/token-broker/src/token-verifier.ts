import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'
import { sha256Hex, SingleFlight } from '@wxlogin/service-kit'
import type { TokenStore } from './token-store.js'

export type Verdict = 'valid' | 'invalid' | 'unknown'

export interface TokenVerifierOptions {
  store: TokenStore
  /** Asks WeChat whether the token works (a read-only call that spends no token quota). */
  check: (appid: string, token: string) => Promise<'valid' | 'invalid'>
  /** The least time between two checks of an app, cluster-wide. */
  floorMs: number
  /** How long a caller waits for another replica's verdict. */
  waitMs: number
  metrics: Counter<'appid' | 'result'>
  log: FastifyBaseLogger
}

/** An invalid token stays invalid: its verdict is kept longer than a valid one's. */
const INVALID_KEPT_MS = 600_000

/**
 * "Does WeChat still take this token?", asked when a caller's behaviour says it may not (it asks
 * again for the token it was just given, or forces a refresh): one check at a time per app
 * cluster-wide, at most one per `floorMs`, its verdict shared through the store. A caller that
 * finds the check taken waits for the verdict; without one in time it is 'unknown', and the
 * broker serves what it has rather than refreshing on a guess.
 */
export class TokenVerifier {
  private readonly inflight = new SingleFlight<string, Verdict>()

  constructor (private readonly opts: TokenVerifierOptions) {}

  /** The last verdict this replica learned per app, reused for the floor: a caller that re-asks in a loop costs no Redis read. */
  private readonly recent = new Map<string, { token: string, verdict: Verdict, until: number }>()

  async verify (appid: string, token: string): Promise<Verdict> {
    const known = this.recent.get(appid)
    if (known !== undefined && known.token === token && known.until > Date.now()) return known.verdict
    const verdict = await this.inflight.run(`${appid}\0${token}`, async () => await this.clusterWide(appid, token))
    if (verdict !== 'unknown') this.recent.set(appid, { token, verdict, until: Date.now() + this.opts.floorMs })
    return verdict
  }

  private async read (appid: string, name: string): Promise<Verdict | null> {
    const v = await this.opts.store.readNote(appid, name).catch(() => null)
    return v === 'valid' || v === 'invalid' ? v : null
  }

  /** This replica's own floor and verdicts, for when the store cannot be asked. */
  private readonly local = new Map<string, { at: number, token: string, verdict: Verdict }>()

  /** Redis down: never wait on it (the token path must stay fast); check from here, at most once per floor. */
  private async alone (appid: string, token: string): Promise<Verdict> {
    const last = this.local.get(appid)
    if (last !== undefined && Date.now() - last.at < this.opts.floorMs) return last.token === token ? last.verdict : 'unknown'
    const entry = { at: Date.now(), token, verdict: 'unknown' as Verdict }
    this.local.set(appid, entry)
    try {
      entry.verdict = await this.opts.check(appid, token)
    } catch {
      entry.verdict = 'unknown'
    }
    this.opts.metrics.inc({ appid, result: entry.verdict })
    return entry.verdict
  }

  private async clusterWide (appid: string, token: string): Promise<Verdict> {
    const { store, metrics } = this.opts
    if (!store.available()) return await this.alone(appid, token)
    const name = `verdict:${sha256Hex(token).slice(0, 32)}`
    const known = await this.read(appid, name)
    if (known !== null) {
      metrics.inc({ appid, result: `shared_${known}` })
      return known
    }
    const mine = await store.claim(appid, 'verify', this.opts.floorMs).catch(() => false)
    if (mine) {
      let verdict: Verdict
      try {
        verdict = await this.opts.check(appid, token)
      } catch {
        verdict = 'unknown'
      }
      metrics.inc({ appid, result: verdict })
      this.opts.log.info({ appid, verdict }, 'access_token checked with WeChat')
      if (verdict !== 'unknown') await store.note(appid, name, verdict, verdict === 'invalid' ? INVALID_KEPT_MS : this.opts.floorMs).catch(() => {})
      return verdict
    }
    const deadline = Date.now() + this.opts.waitMs
    while (Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 50))
      const v = await this.read(appid, name)
      if (v !== null) {
        metrics.inc({ appid, result: `shared_${v}` })
        return v
      }
    }
    metrics.inc({ appid, result: 'skipped' })
    return 'unknown'
  }
}
