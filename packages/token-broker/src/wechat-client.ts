import type { Got } from 'got'
import { callWechat, type ServiceError, type WechatApiMetrics, type WechatOutcome, type WechatRequest } from '@wxlogin/service-kit'
import type { WechatAppConfig } from './config.js'
import { errors } from './errors.js'

export interface FetchedToken { token: string, expiresInSeconds: number }

export interface WechatClientOptions {
  got: Got
  metrics: WechatApiMetrics
  baseUrl: string
  timeoutMs: number
  /** Total time the retries of one operation may take. */
  retryBudgetMs: number
  /** First backoff pause; doubled per attempt, with jitter. */
  backoffBaseMs?: number
  maxAttempts?: number
}

/** Credential errors: retrying them only burns quota (WxJava #1381). */
const CREDENTIAL_ERRCODES = new Set([40001, 40013, 40125, 40164, 41002, 41004, 40002])

/** Less time than this left for the caller, and WeChat is not called at all. */
const MIN_ATTEMPT_MS = 100

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** WeChat's secret-bearing APIs. Errors are ServiceErrors whose messages hold no URL and no secret. */
export class WechatClient {
  private readonly backoffBaseMs: number
  private readonly maxAttempts: number

  constructor (private readonly opts: WechatClientOptions) {
    this.backoffBaseMs = opts.backoffBaseMs ?? 200
    this.maxAttempts = opts.maxAttempts ?? 4
  }

  /**
   * Runs `req` until it succeeds, fails for good, or the budget is spent.
   * `retryable` decides per outcome; the loop never sleeps past the budget.
   */
  private async withRetries (req: WechatRequest, retryable: (o: WechatOutcome) => boolean, callerDeadline = Infinity): Promise<WechatOutcome> {
    const deadline = Math.min(Date.now() + this.opts.retryBudgetMs, callerDeadline)
    for (let attempt = 1; ; attempt++) {
      // Never outlive the caller: an answer nobody waits for may still spend a single-use code.
      const left = callerDeadline - Date.now()
      if (left < MIN_ATTEMPT_MS) throw errors.upstreamUnavailable('the caller\'s deadline leaves no time for WeChat')
      const outcome = await callWechat(this.opts.got, this.opts.metrics, { ...req, timeoutMs: Math.min(req.timeoutMs, left) })
      if (outcome.kind === 'ok' || !retryable(outcome) || attempt >= this.maxAttempts) return outcome
      const pause = this.backoffBaseMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5)
      if (Date.now() + pause >= deadline) return outcome
      await sleep(pause)
    }
  }

  async fetchToken (app: WechatAppConfig, force: boolean): Promise<FetchedToken> {
    const base = this.opts.baseUrl
    const req: WechatRequest = app.tokenMode === 'stable'
      ? {
          api: 'stable_token',
          method: 'POST',
          url: `${base}/cgi-bin/stable_token`,
          json: { grant_type: 'client_credential', appid: app.appid, secret: app.secret, force_refresh: force },
          timeoutMs: this.opts.timeoutMs
        }
      : {
          api: 'token',
          method: 'GET',
          url: `${base}/cgi-bin/token`,
          searchParams: { grant_type: 'client_credential', appid: app.appid, secret: app.secret },
          timeoutMs: this.opts.timeoutMs
        }
    const outcome = await this.withRetries(req, o =>
      o.kind === 'timeout' || o.kind === 'network' || (o.kind === 'http' && o.status >= 500) ||
      (o.kind === 'errcode' && o.errcode === -1))
    if (outcome.kind !== 'ok') throw tokenError(outcome)
    const token = outcome.body.access_token
    const expiresIn = outcome.body.expires_in
    if (typeof token !== 'string' || token === '' || typeof expiresIn !== 'number' || expiresIn <= 0) {
      throw errors.upstreamUnavailable('WeChat answered without an access_token')
    }
    return { token, expiresInSeconds: expiresIn }
  }

  /** `deadline` (Unix ms): when the caller stops waiting; WeChat is given up on before it. */
  async code2session (app: WechatAppConfig, jsCode: string, deadline = Infinity): Promise<{ openid: string, unionid: string | null }> {
    // A login code is single use: retry only what cannot have reached WeChat.
    const outcome = await this.withRetries({
      api: 'jscode2session',
      method: 'GET',
      url: `${this.opts.baseUrl}/sns/jscode2session`,
      searchParams: { appid: app.appid, secret: app.secret, js_code: jsCode, grant_type: 'authorization_code' },
      timeoutMs: this.opts.timeoutMs
    }, o => o.kind === 'network' && !o.sent, deadline)
    if (outcome.kind === 'ok') {
      const { openid, unionid } = outcome.body
      if (typeof openid !== 'string' || openid === '') throw errors.upstreamUnavailable('WeChat answered without an openid')
      return { openid, unionid: typeof unionid === 'string' && unionid !== '' ? unionid : null }
    }
    if (outcome.kind === 'errcode') {
      switch (outcome.errcode) {
        case 40029: case 40163: return Promise.reject(errors.invalidCode(outcome.errcode))
        case 45011: return Promise.reject(errors.rateLimited(outcome.errcode))
        case 40226: return Promise.reject(errors.highRiskUser(outcome.errcode))
        case -1: return Promise.reject(errors.upstreamUnavailable('WeChat is busy', -1))
        default: return Promise.reject(errors.wechatError(outcome.errcode, 'the login code exchange'))
      }
    }
    throw transportError(outcome)
  }
}

function transportError (o: Exclude<WechatOutcome, { kind: 'ok' } | { kind: 'errcode' }>): ServiceError {
  switch (o.kind) {
    case 'timeout': return errors.upstreamUnavailable('timed out')
    case 'network': return errors.upstreamUnavailable(`network error ${o.code}`)
    case 'http': return errors.upstreamUnavailable(`HTTP ${o.status}`)
  }
}

function tokenError (o: Exclude<WechatOutcome, { kind: 'ok' }>): ServiceError {
  if (o.kind !== 'errcode') return transportError(o)
  if (o.errcode === -1) return errors.upstreamUnavailable('WeChat is busy', -1)
  if (CREDENTIAL_ERRCODES.has(o.errcode)) return errors.wechatError(o.errcode, 'the app credentials')
  return errors.wechatError(o.errcode, 'the token request')
}
