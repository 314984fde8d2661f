import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'
import { SingleFlight } from '@wxlogin/service-kit'
import type { TokenStore } from '../store/token-store.js'
import { verdictName, VERIFY_CLAIM } from '../keys.js'

export type Verdict = 'valid' | 'invalid' | 'unknown'

export interface TokenVerifierOptions {
  store: TokenStore
  /** Asks WeChat whether the token works (a read-only call that spends no token quota). */
  check: (appid: string, token: string) => Promise<'valid' | 'invalid'>
  /** The least time between two checks of an app, cluster-wide. */
  floorMs: number
  /** How long a caller waits for a verdict (its own check, or another replica's). */
  waitMs: number
  metrics: Counter<'appid' | 'result'>
  log: FastifyBaseLogger
  /** The clock verdicts and asks are stamped with (tests hold it still). */
  now?: () => number
}

/** An invalid token stays invalid: its verdict is kept longer than a valid one's. */
const INVALID_KEPT_MS = 600_000
const POLL_MS = 50

/** A verdict and when it was reached (epoch ms, the checking replica's clock). */
interface Noted {
  verdict: 'valid' | 'invalid'
  at: number
}

/**
 * "Does WeChat still take this token?", asked when a caller's behaviour says it may not (it asks
 * again for the token it was just given, or forces a refresh). A verdict answers only the callers
 * that asked before it was reached: concurrent askers share one check, while a caller that asks
 * after a check finished (its SDK met 40001 since) waits for the next one. Checks are bounded per
 * app cluster-wide (one per `floorMs`) and their verdicts shared through the store; a caller with
 * no verdict in time gets 'unknown', and the broker serves what it has rather than refreshing on
 * a guess. Redis down: the same rules in this process alone.
 */
export class TokenVerifier {
  private readonly inflight = new SingleFlight<string, Verdict>()
  /** This replica's verdicts and floor, for when the store cannot be asked. */
  private readonly localNotes = new Map<string, Noted>()
  private readonly localLast = new Map<string, number>()

  private readonly now: () => number

  constructor (private readonly opts: TokenVerifierOptions) {
    this.now = opts.now ?? Date.now
  }

  async verify (appid: string, token: string): Promise<Verdict> {
    const askedAt = this.now()
    const name = verdictName(token)
    const deadline = askedAt + this.opts.waitMs
    for (;;) {
      // A check of this token in flight here was not finished when this caller asked: shared.
      const running = this.inflight.pending(`${appid}\0${token}`)
      if (running !== undefined) return await running
      const noted = await this.noted(appid, name)
      // Reached strictly after this caller asked: a verdict of the same millisecond may predate the ask.
      if (noted !== null && (noted.verdict === 'invalid' || noted.at > askedAt)) {
        this.opts.metrics.inc({ appid, result: `shared_${noted.verdict}` })
        return noted.verdict
      }
      if (await this.mayCheck(appid)) {
        return await this.inflight.run(`${appid}\0${token}`, async () => await this.checkNow(appid, token, name))
      }
      if (this.now() + POLL_MS > deadline) break
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
    this.opts.metrics.inc({ appid, result: 'skipped' })
    return 'unknown'
  }

  private async checkNow (appid: string, token: string, name: string): Promise<Verdict> {
    let verdict: Verdict
    try {
      verdict = await this.opts.check(appid, token)
    } catch {
      verdict = 'unknown'
    }
    this.opts.metrics.inc({ appid, result: verdict })
    this.opts.log.info({ appid, verdict }, 'access_token checked with WeChat')
    if (verdict !== 'unknown') await this.note(appid, name, { verdict, at: this.now() })
    return verdict
  }

  /** The bound: one check per app per floor, cluster-wide (this replica's own while Redis is down). */
  private async mayCheck (appid: string): Promise<boolean> {
    const { store, floorMs } = this.opts
    if (store.available()) {
      try {
        return await store.claim(appid, VERIFY_CLAIM, floorMs)
      } catch {}
    }
    const now = this.now()
    if (now - (this.localLast.get(appid) ?? 0) < floorMs) return false
    this.localLast.set(appid, now)
    return true
  }

  private async noted (appid: string, name: string): Promise<Noted | null> {
    const { store } = this.opts
    const local = this.localNotes.get(`${appid}\0${name}`) ?? null
    if (!store.available()) return local
    const raw = await store.readNote(appid, name).catch(() => null)
    const m = raw === null ? null : /^(valid|invalid):(\d+)$/.exec(raw)
    return m === null ? local : { verdict: m[1] as Noted['verdict'], at: Number(m[2]) }
  }

  private async note (appid: string, name: string, noted: Noted): Promise<void> {
    // Kept long enough for the callers waiting on it; an invalid verdict for good measure longer.
    const ttlMs = noted.verdict === 'invalid' ? INVALID_KEPT_MS : Math.max(this.opts.floorMs, this.opts.waitMs)
    const key = `${appid}\0${name}`
    this.localNotes.delete(key)
    this.localNotes.set(key, noted)
    // Bounded: the oldest verdicts are forgotten first (a Map keeps insertion order).
    if (this.localNotes.size > 1000) this.localNotes.delete(this.localNotes.keys().next().value as string)
    if (this.opts.store.available()) {
      await this.opts.store.note(appid, name, `${noted.verdict}:${noted.at}`, ttlMs).catch(() => {})
    }
  }
}
