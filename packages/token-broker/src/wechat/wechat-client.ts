import {
  callWechat,
  type ServiceError,
  type Upstream,
  type WechatApiMetrics,
  type WechatOutcome,
  type WechatRequest
} from '@wxlogin/service-kit'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'

export interface FetchedToken {
  token: string
  expiresInSeconds: number
}

export interface WechatClientOptions {
  /** How calls reach WeChat (through the egress proxy when one is set). */
  upstream: Upstream
  metrics: WechatApiMetrics
  baseUrl: string
  timeoutMs: number
  /** Total time the retries of one operation may take. */
  retryBudgetMs: number
  /** First backoff pause; doubled per attempt, with jitter. */
  backoffBaseMs?: number | undefined
  maxAttempts?: number | undefined
  /** Each call to a token endpoint, counted against WeChat's daily quota of that endpoint. */
  countTokenCall?: (appid: string, api: 'token' | 'stable_token', force: boolean) => void
}

export type TicketType = 'jsapi' | 'wx_card'

/** WeChat rejected the access_token a call carried: the caller may refresh it and try once more. */
export const TOKEN_REJECTED = new Set([40001, 40014, 42001])

/** Errors a read-only call may be retried after: nothing was done, or nothing that matters twice. */
const retryableRead = (o: WechatOutcome): boolean =>
  o.kind === 'timeout' ||
  o.kind === 'network' ||
  (o.kind === 'http' && o.status >= 500) ||
  (o.kind === 'errcode' && o.errcode === -1)

/** Credential errors: retrying them only burns quota (WxJava #1381). */
const CREDENTIAL_ERRCODES = new Set([40001, 40013, 40125, 40164, 41002, 41004, 40002])

/** Less time than this left for the caller, and WeChat is not called at all. */
const MIN_ATTEMPT_MS = 100

const sleep = async (ms: number): Promise<void> => {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** WeChat's secret-bearing APIs. Errors are ServiceErrors whose messages hold no URL and no secret. */
export class WechatClient {
  private readonly backoffBaseMs: number
  private readonly maxAttempts: number

  constructor (readonly opts: WechatClientOptions) {
    this.backoffBaseMs = opts.backoffBaseMs ?? 200
    this.maxAttempts = opts.maxAttempts ?? 4
  }

  /**
   * Runs `req` until it succeeds, fails for good, or the budget is spent.
   * `retryable` decides per outcome; the loop never sleeps past the budget. (Also for the other
   * modules of wechat/: the phone exchange and the usage poll.)
   */
  async withRetries (
    req: WechatRequest,
    retryable: (o: WechatOutcome) => boolean,
    callerDeadline = Infinity,
    onAttempt?: () => void
  ): Promise<WechatOutcome> {
    const deadline = Math.min(Date.now() + this.opts.retryBudgetMs, callerDeadline)
    for (let attempt = 1; ; attempt++) {
      // Never outlive the caller: an answer nobody waits for may still spend a single-use code.
      const left = callerDeadline - Date.now()
      if (left < MIN_ATTEMPT_MS) throw errors.upstreamUnavailable("the caller's deadline leaves no time for WeChat")
      onAttempt?.()
      const outcome = await callWechat(this.opts.upstream, this.opts.metrics, {
        ...req,
        timeoutMs: Math.min(req.timeoutMs, left)
      })
      if (outcome.kind === 'ok' || !retryable(outcome) || attempt >= this.maxAttempts) return outcome
      const pause = this.backoffBaseMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5)
      if (Date.now() + pause >= deadline) return outcome
      await sleep(pause)
    }
  }

  async fetchToken (app: WechatAppConfig, force: boolean): Promise<FetchedToken> {
    const base = this.opts.baseUrl
    const req: WechatRequest =
      app.tokenMode === 'stable'
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
    const api = app.tokenMode === 'stable' ? 'stable_token' : 'token'
    const outcome = await this.withRetries(req, retryableRead, Infinity, () =>
      this.opts.countTokenCall?.(app.appid, api, force)
    )
    if (outcome.kind !== 'ok') throw tokenError(outcome)
    const token = outcome.body.access_token
    const expiresIn = outcome.body.expires_in
    if (typeof token !== 'string' || token === '' || typeof expiresIn !== 'number' || expiresIn <= 0) {
      throw errors.upstreamUnavailable('WeChat answered without an access_token')
    }
    return { token, expiresInSeconds: expiresIn }
  }

  /** GET /cgi-bin/ticket/getticket: a JS-SDK (`jsapi`) or card (`wx_card`) ticket, with an access_token. */
  async fetchTicket (accessToken: string, type: TicketType): Promise<FetchedToken> {
    const outcome = await this.withRetries(
      {
        api: 'getticket',
        method: 'GET',
        url: `${this.opts.baseUrl}/cgi-bin/ticket/getticket`,
        searchParams: { access_token: accessToken, type },
        timeoutMs: this.opts.timeoutMs
      },
      retryableRead
    )
    if (outcome.kind !== 'ok') throw callError(outcome, `the ${type} ticket request`)
    const { ticket, expires_in: expiresIn } = outcome.body
    if (typeof ticket !== 'string' || ticket === '' || typeof expiresIn !== 'number' || expiresIn <= 0) {
      throw errors.upstreamUnavailable('WeChat answered without a ticket')
    }
    return { token: ticket, expiresInSeconds: expiresIn }
  }

  /**
   * Whether WeChat still takes this access_token: GET /cgi-bin/getcallbackip, read-only, with no
   * effect on any token quota (openapi/quota/get would work too, but it counts against the
   * quota tool's own small allowance). Anything but a clear answer about the token throws.
   */
  async checkToken (accessToken: string): Promise<'valid' | 'invalid'> {
    const outcome = await this.withRetries(
      {
        api: 'getcallbackip',
        method: 'GET',
        url: `${this.opts.baseUrl}/cgi-bin/getcallbackip`,
        searchParams: { access_token: accessToken },
        timeoutMs: this.opts.timeoutMs
      },
      retryableRead
    )
    if (outcome.kind === 'ok') return 'valid'
    if (outcome.kind === 'errcode' && TOKEN_REJECTED.has(outcome.errcode)) return 'invalid'
    throw callError(outcome, 'the token check')
  }

  /** POST /cgi-bin/openapi/quota/get: an API's daily quota, its use, and what remains. */
  async quota (accessToken: string, cgiPath: string): Promise<Record<string, unknown>> {
    return await this.openapiCall(
      'quota_get',
      '/cgi-bin/openapi/quota/get',
      accessToken,
      { cgi_path: cgiPath },
      'the quota query'
    )
  }

  /** POST /cgi-bin/openapi/rid/get: what the request behind a WeChat error's rid sent and got. */
  async rid (accessToken: string, rid: string): Promise<Record<string, unknown>> {
    try {
      return await this.openapiCall('rid_get', '/cgi-bin/openapi/rid/get', accessToken, { rid }, 'the rid query')
    } catch (err) {
      // 76001: no such rid (or older than WeChat keeps), 76002: not a rid. The caller's mistake.
      const errcode = (err as { wechatErrcode?: number }).wechatErrcode
      if (errcode === 76001 || errcode === 76002) throw errors.unknownRid(errcode)
      throw err
    }
  }

  private async openapiCall (
    api: 'quota_get' | 'rid_get',
    path: string,
    accessToken: string,
    json: Record<string, unknown>,
    what: string
  ): Promise<Record<string, unknown>> {
    const outcome = await this.withRetries(
      {
        api,
        method: 'POST',
        url: `${this.opts.baseUrl}${path}`,
        searchParams: { access_token: accessToken },
        json,
        timeoutMs: this.opts.timeoutMs
      },
      retryableRead
    )
    if (outcome.kind !== 'ok') throw callError(outcome, what)
    return outcome.body
  }

  /**
   * POST /cgi-bin/clear_quota/v2 with the appsecret: it works when the token endpoint's quota is
   * spent. WeChat allows 10 a month, so only what cannot have reached WeChat is retried.
   */
  async clearQuota (app: WechatAppConfig): Promise<void> {
    const outcome = await this.withRetries(
      {
        api: 'clear_quota',
        method: 'POST',
        url: `${this.opts.baseUrl}/cgi-bin/clear_quota/v2`,
        json: { appid: app.appid, appsecret: app.secret },
        timeoutMs: this.opts.timeoutMs
      },
      o => o.kind === 'network' && !o.sent
    )
    if (outcome.kind === 'ok') return
    if (outcome.kind === 'errcode' && outcome.errcode === 48006) throw errors.clearQuotaExhausted(outcome.errcode)
    throw callError(outcome, 'the quota reset')
  }

  /** `deadline` (Unix ms): when the caller stops waiting; WeChat is given up on before it. */
  async code2session (
    app: WechatAppConfig,
    jsCode: string,
    deadline = Infinity
  ): Promise<{ openid: string, unionid: string | null }> {
    // A login code is single use: retry only what cannot have reached WeChat.
    const outcome = await this.withRetries(
      {
        api: 'jscode2session',
        method: 'GET',
        url: `${this.opts.baseUrl}/sns/jscode2session`,
        searchParams: { appid: app.appid, secret: app.secret, js_code: jsCode, grant_type: 'authorization_code' },
        timeoutMs: this.opts.timeoutMs
      },
      o => o.kind === 'network' && !o.sent,
      deadline
    )
    if (outcome.kind === 'ok') {
      const { openid, unionid } = outcome.body
      if (typeof openid !== 'string' || openid === '') {
        throw errors.upstreamUnavailable('WeChat answered without an openid')
      }
      return { openid, unionid: typeof unionid === 'string' && unionid !== '' ? unionid : null }
    }
    if (outcome.kind === 'errcode') {
      switch (outcome.errcode) {
        case 40029:
        case 40163:
          return Promise.reject(errors.invalidCode(outcome.errcode))
        case 45011:
          return Promise.reject(errors.rateLimited(outcome.errcode))
        case 40226:
          return Promise.reject(errors.highRiskUser(outcome.errcode))
        case -1:
          return Promise.reject(errors.upstreamUnavailable('WeChat is busy', -1))
        default:
          return Promise.reject(errors.wechatError(outcome.errcode, 'the login code exchange'))
      }
    }
    throw transportError(outcome)
  }
}

export function transportError (o: Exclude<WechatOutcome, { kind: 'ok' } | { kind: 'errcode' }>): ServiceError {
  switch (o.kind) {
    case 'timeout':
      return errors.upstreamUnavailable('timed out')
    case 'network':
      return errors.upstreamUnavailable(`network error ${o.code}`)
    case 'http':
      return errors.upstreamUnavailable(`HTTP ${o.status}`)
  }
}

function callError (o: Exclude<WechatOutcome, { kind: 'ok' }>, what: string): ServiceError {
  if (o.kind !== 'errcode') return transportError(o)
  if (o.errcode === -1) return errors.upstreamUnavailable('WeChat is busy', -1)
  return errors.wechatError(o.errcode, what)
}

function tokenError (o: Exclude<WechatOutcome, { kind: 'ok' }>): ServiceError {
  if (o.kind !== 'errcode') return transportError(o)
  if (o.errcode === -1) return errors.upstreamUnavailable('WeChat is busy', -1)
  if (CREDENTIAL_ERRCODES.has(o.errcode)) return errors.wechatError(o.errcode, 'the app credentials')
  return errors.wechatError(o.errcode, 'the token request')
}
