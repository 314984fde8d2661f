import { SingleFlight } from '@wxlogin/service-kit/single-flight'
import { createUpstream, UpstreamError, type Upstream } from '@wxlogin/service-kit/upstream-http'
import { BrokerError, BrokerUnavailableError } from './errors.js'

export { BrokerError, BrokerUnavailableError }

export interface BrokerClientOptions {
  /** e.g. http://127.0.0.1:3001 */
  baseUrl: string
  /** This service's client token at the broker. */
  token: string
  /** Per-request timeout. */
  timeoutMs?: number
  /** A cached token is used until this long before it expires. */
  refreshMarginMs?: number
}

export interface AccessToken {
  accessToken: string
  /** Unix milliseconds. */
  expiresAt: number
}

export interface Session {
  openid: string
  unionid: string | null
}

export interface PhoneNumberOptions {
  openid?: string
  retryKeySha256?: string
}

/** A WeChat push as the broker delivers it (POST /v1/wechat-events/receive). */
export interface WechatEvent {
  id: string
  appid: string
  event: string
  openid: string
  create_time: number
  message: Record<string, unknown>
}

/** A phone number as WeChat's getuserphonenumber gives it (its watermark checked by the broker). */
export interface PhoneNumber {
  phoneNumber: string
  purePhoneNumber: string
  countryCode: string
}

/**
 * Tells the broker how long this caller will wait (ms), so it gives up on WeChat first: a
 * login code exchanged after the caller timed out would be spent for nothing.
 */
// The same name as service-kit's DEADLINE_HEADER, which the broker reads. This package takes
// only service-kit's self-contained subpaths (single-flight, upstream-http), never its index,
// which would bring Fastify and Redis into every caller.
export const DEADLINE_HEADER = 'x-deadline-ms'
/** Time left for the broker's answer to travel back. */
const DEADLINE_MARGIN_MS = 250

export interface BrokerClient {
  getAccessToken: (appid: string) => Promise<string>
  /** Tells the broker WeChat rejected `staleToken`; resolves to a different, current token. */
  invalidate: (appid: string, staleToken: string) => Promise<string>
  /** With `retryKeySha256` the broker keeps the answer for the code's life, for this client and key alone. */
  code2session: (appid: string, jsCode: string, retryKeySha256?: string) => Promise<Session>
  /**
   * getuserphonenumber at the broker. With `retryKeySha256` the number is kept (sealed) for the
   * code's life and given again only to this client with this key and openid.
   */
  phoneNumber: (appid: string, code: string, opts?: PhoneNumberOptions) => Promise<PhoneNumber>
  /** WeChat's risk rank (getuserriskrank) of a user: 0 lowest to 4 highest. */
  userRiskRank: (appid: string, ask: { openid: string, scene: 0 | 1, clientIp: string }) => Promise<number>
  /**
   * WeChat's pushes for this client, at least once: up to `max`, waiting up to `waitSeconds` for
   * one. Acknowledge each once handled; an unacknowledged one comes again.
   */
  receiveEvents: (opts?: { max?: number, waitSeconds?: number }) => Promise<WechatEvent[]>
  ackEvents: (ids: string[]) => Promise<void>
  /** Readiness probe: the broker answers /healthz. */
  ping: () => Promise<boolean>
}

interface TokenBody {
  access_token: string
  expires_in: number
  expires_at: string
}

type Request = <T>(method: 'GET' | 'POST', path: string, json?: object) => Promise<T>

/**
 * One request to the broker, never retried here (the broker retries WeChat itself, and a code
 * may be single use); errors are BrokerErrors whose messages hold no token.
 */
function requester (upstream: Upstream, base: string, token: string, timeoutMs: number): Request {
  return async <T>(method: 'GET' | 'POST', path: string, json?: object): Promise<T> => {
    let res
    try {
      res = await upstream({
        method,
        url: `${base}${path}`,
        headers: {
          authorization: `Bearer ${token}`,
          [DEADLINE_HEADER]: String(Math.max(100, timeoutMs - DEADLINE_MARGIN_MS))
        },
        ...(json !== undefined ? { json } : {}),
        timeoutMs
      })
    } catch (err) {
      // UpstreamError's message names no URL or header: the bearer token stays out of it.
      const detail = !(err instanceof UpstreamError) ? 'ERR_NETWORK' : err.timeout ? 'timed out' : err.code
      throw new BrokerUnavailableError(detail, err)
    }
    // An acknowledgement answers 204, with no body.
    if (res.statusCode === 204) return undefined as T
    let body: Record<string, unknown>
    try {
      body = JSON.parse(res.body) as Record<string, unknown>
    } catch (err) {
      throw new BrokerUnavailableError(`HTTP ${res.statusCode} without JSON`, err)
    }
    if (res.statusCode >= 400) {
      throw new BrokerError(
        typeof body.error === 'string' ? body.error : 'broker_error',
        typeof body.message === 'string' ? body.message : `HTTP ${res.statusCode}`,
        res.statusCode,
        typeof body.wechat_errcode === 'number' ? body.wechat_errcode : undefined
      )
    }
    return body as T
  }
}

/** Tokens per app until `marginMs` before they expire; never replaced by an older one. */
class TokenCache {
  private readonly tokens = new Map<string, AccessToken>()
  constructor (private readonly marginMs: number) {}

  fresh (appid: string): string | undefined {
    const cached = this.tokens.get(appid)
    return cached !== undefined && cached.expiresAt - Date.now() > this.marginMs ? cached.accessToken : undefined
  }

  forget (appid: string, token: string): void {
    if (this.tokens.get(appid)?.accessToken === token) this.tokens.delete(appid)
  }

  /** Keeps the broker's answer unless a token expiring later is already here; returns the answer's token. */
  remember (appid: string, body: TokenBody): string {
    const expiresAt = Date.parse(body.expires_at)
    const cur = this.tokens.get(appid)
    if (cur === undefined || cur.expiresAt <= expiresAt || cur.accessToken === body.access_token) {
      this.tokens.set(appid, { accessToken: body.access_token, expiresAt })
    }
    return body.access_token
  }
}

export function createBrokerClient (opts: BrokerClientOptions): BrokerClient {
  const base = opts.baseUrl.replace(/\/+$/, '')
  const timeoutMs = opts.timeoutMs ?? 5000
  // Node's own HTTP client: got cost a login-api a fifth of its CPU per login (docs/benchmarks.md).
  const upstream = createUpstream()
  const request = requester(upstream, base, opts.token, timeoutMs)
  const cache = new TokenCache(opts.refreshMarginMs ?? 60_000)
  // One request per app at a time, whatever the number of callers.
  const fetches = new SingleFlight<string, string>()
  const path = (appid: string, rest: string): string => `/v1/apps/${encodeURIComponent(appid)}${rest}`

  return {
    async getAccessToken (appid) {
      return (
        cache.fresh(appid) ??
        (await fetches.run(appid, async () =>
          cache.remember(appid, await request<TokenBody>('GET', path(appid, '/access-token')))
        ))
      )
    },

    async invalidate (appid, staleToken) {
      cache.forget(appid, staleToken)
      // A token other than the stale one, fresh from the broker, can be used as it is.
      const fresh = cache.fresh(appid)
      if (fresh !== undefined) return fresh
      return cache.remember(
        appid,
        await request<TokenBody>('POST', path(appid, '/access-token/invalidate'), { access_token: staleToken })
      )
    },

    async code2session (appid, jsCode, retryKeySha256) {
      const body = await request<Record<string, unknown>>(
        'POST',
        path(appid, '/code2session'),
        retryKeySha256 === undefined ? { js_code: jsCode } : { js_code: jsCode, retry_key_sha256: retryKeySha256 }
      )
      // An empty openid would log every such user in as one user.
      if (typeof body.openid !== 'string' || !/^[\w-]{1,128}$/.test(body.openid)) {
        throw new BrokerUnavailableError('answer without a valid openid')
      }
      const unionid = typeof body.unionid === 'string' && /^[\w-]{1,128}$/.test(body.unionid) ? body.unionid : null
      return { openid: body.openid, unionid }
    },

    async phoneNumber (appid, code, opts = {}) {
      const body = await request<{ phone_info?: Record<string, unknown> }>('POST', path(appid, '/phone-number'), {
        code,
        ...(opts.openid === undefined ? {} : { openid: opts.openid }),
        ...(opts.retryKeySha256 === undefined ? {} : { retry_key_sha256: opts.retryKeySha256 })
      })
      const info = body.phone_info
      if (
        info === undefined ||
        typeof info.phoneNumber !== 'string' ||
        typeof info.purePhoneNumber !== 'string' ||
        typeof info.countryCode !== 'string'
      ) {
        throw new BrokerUnavailableError('answer without a phone_info')
      }
      return { phoneNumber: info.phoneNumber, purePhoneNumber: info.purePhoneNumber, countryCode: info.countryCode }
    },

    async userRiskRank (appid, ask) {
      const body = await request<{ risk_rank?: unknown }>('POST', path(appid, '/user-risk-rank'), {
        openid: ask.openid,
        scene: ask.scene,
        client_ip: ask.clientIp
      })
      if (typeof body.risk_rank !== 'number') throw new BrokerUnavailableError('answer without a risk_rank')
      return body.risk_rank
    },

    async receiveEvents (o = {}) {
      const waitSeconds = o.waitSeconds ?? 0
      // The long poll's own bound, past the broker's wait.
      const poll = requester(upstream, base, opts.token, timeoutMs + waitSeconds * 1000)
      const body = await poll<{ messages?: unknown }>('POST', '/v1/wechat-events/receive', {
        max: o.max ?? 10,
        wait_seconds: waitSeconds
      })
      if (!Array.isArray(body.messages)) throw new BrokerUnavailableError('answer without messages')
      return body.messages as WechatEvent[]
    },

    async ackEvents (ids) {
      if (ids.length === 0) return
      await request('POST', '/v1/wechat-events/ack', { ids })
    },

    async ping () {
      try {
        const res = await upstream({ method: 'GET', url: `${base}/healthz`, timeoutMs: Math.min(timeoutMs, 2000) })
        return res.statusCode === 200
      } catch {
        return false
      }
    }
  }
}
