/// <reference types="miniprogram-api-typings" />
/**
 * @wxlogin/miniprogram: the mini-program's half of the login. One wx.login per attempt; a
 * network error, a timeout, a 5xx or 503 is retried with the SAME code, phoneCode and retry_key
 * (a new wx.login would burn them: the phone code is then lost); an invalid code gets one fresh
 * wx.login. Concurrent logins share one; on a 401 every request waits for one silent re-login.
 * With signed sessions (SESSION_FORMAT=jwt) the access token is refreshed a minute before it
 * expires and on a 401, one refresh shared by every request; a refused refresh logs in again.
 * CommonJS, ES2015, no dependencies, no Node built-ins: WeChat DevTools' 构建 npm takes it as it
 * is, and Taro or uni-app pass their own wx-shaped `api`.
 */

// Types only (erased from the built file, which requires nothing): see types.ts.
import type { ClientOptions, LoginClient, PhoneCodeResult, PhoneEvent, RequestAnswer, RequestOptions } from './types.js'
import type { StoredSession, WxApi } from './types.js'
export type { ClientOptions, LoginClient, PhoneCodeResult, PhoneEvent, RequestAnswer, RequestOptions } from './types.js'
export type { RetryOptions, StoredSession, WxApi } from './types.js'

/** A login or request the server refused, or that could not reach it. `code` is the server's `error`. */
export class LoginError extends Error {
  readonly code: string
  readonly statusCode: number | undefined
  readonly wechatErrcode: number | undefined
  /** The trace id the failed operation's requests carried (traceparent): what to quote in a report. */
  readonly traceId: string | undefined
  constructor (code: string, message: string, statusCode?: number, wechatErrcode?: number, traceId?: string) {
    super(message)
    this.name = 'LoginError'
    this.code = code
    this.statusCode = statusCode
    this.wechatErrcode = wechatErrcode
    this.traceId = traceId
  }
}

/**
 * The phoneCode of a `bindgetphonenumber` or `bindgetrealtimephonenumber` event, or why there is
 * none: the user refused (`getPhoneNumber:fail user deny` on iOS, `:fail:user deny` on Android),
 * no quota left (errno 1400001: the component is paid per success), or another failure.
 */
export function phoneCodeFrom (event: PhoneEvent): PhoneCodeResult {
  const d = event?.detail ?? {}
  if (typeof d.code === 'string' && d.code !== '') return { code: d.code }
  const errMsg = d.errMsg
  const errno = d.errno
  if (errno === 1400001) return { error: 'no_quota', errno, errMsg }
  const denied = typeof errMsg === 'string' && /fail:? ?user deny|fail:? ?user cancel/.test(errMsg)
  if (denied) return { error: 'user_denied', errno, errMsg }
  return { error: 'failed', errno, errMsg }
}

/** A fresh header object each time: the runtime may add to the one it is given. */
const jsonBody = (): Record<string, string> => ({ 'content-type': 'application/json' })

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

function hex (bytes: ArrayLike<number>): string {
  let out = ''
  for (let i = 0; i < bytes.length; i++) out += ((bytes[i] as number) + 0x100).toString(16).slice(1)
  return out
}

/** Bytes from Math.random: for ids that need to be unique, not secret. */
function weakBytes (length: number): number[] {
  const b: number[] = []
  for (let i = 0; i < length; i++) b.push(Math.floor(Math.random() * 256))
  return b
}

/**
 * W3C trace context (the `traceparent` header): one trace id an operation (a login with its
 * retries, a request with its replay), a new parent span id each attempt, sampled. The servers
 * continue the trace, so a `LoginError`'s traceId finds it. The last byte is odd: never all zeros.
 */
const newTraceId = (): string => hex(weakBytes(15)) + hex([Math.floor(Math.random() * 128) * 2 + 1])
const traceparent = (traceId: string): string => `00-${traceId}-${hex(weakBytes(7))}01-01`

/** The runtime's own `wx` (looked up with typeof: elsewhere it is simply not there). */
function runtimeWx (): WxApi {
  if (typeof wx === 'undefined') throw new Error('createLoginClient: no wx API here; pass `api`')
  return wx as unknown as WxApi
}

export function createLoginClient (options: ClientOptions): LoginClient {
  const api: WxApi = options.api ?? runtimeWx()
  const base = options.baseUrl.replace(/\/+$/, '')
  const storageKey = options.storageKey ?? 'wxlogin:session'
  const timeoutMs = options.timeoutMs ?? 10000
  const retry = { attempts: 5, baseDelayMs: 500, maxRetryAfterMs: 10000, ...options.retry }

  /** One HTTP request, within the trace `traceId` (a new one when none is given). */
  function call (
    url: string, method: string, data: unknown, header: Record<string, string>, traceId = newTraceId()
  ): Promise<RequestAnswer> {
    return new Promise((resolve, reject) => {
      api.request({
        url: url.charAt(0) === '/' ? base + url : url,
        method,
        data,
        header: { ...header, traceparent: traceparent(traceId) },
        timeout: timeoutMs,
        success: res => { resolve({ statusCode: res.statusCode, data: res.data, header: res.header ?? {} }) },
        fail: err => {
          const timeout = /timeout/i.test(err?.errMsg ?? '')
          const message = err?.errMsg ?? 'request failed'
          reject(new LoginError(timeout ? 'timeout' : 'network_error', message, undefined, undefined, traceId))
        }
      })
    })
  }

  const wxLogin = (): Promise<string> => new Promise((resolve, reject) => {
    api.login({
      timeout: timeoutMs,
      success: res => { resolve(res.code) },
      fail: err => { reject(new LoginError('wx_login_failed', err?.errMsg ?? 'wx.login failed')) }
    })
  })

  /** 128 random bits for one login attempt's retry_key (the server keeps only its hash). */
  const retryKey = (): Promise<string> => new Promise(resolve => {
    const weak = (): void => { resolve(hex(weakBytes(16))) }
    if (api.getRandomValues === undefined) { weak(); return }
    api.getRandomValues({ length: 16, success: res => { resolve(hex(new Uint8Array(res.randomValues))) }, fail: weak })
  })

  /** What storage holds, expired or not (an expired access token may still be refreshed). */
  function stored (): StoredSession | null {
    let s: StoredSession | null = null
    try { s = api.getStorageSync(storageKey) || null } catch (e) { s = null }
    return s === null || typeof s.token !== 'string' ? null : s
  }

  function forget (): void {
    try { api.removeStorageSync(storageKey) } catch (e) {}
  }

  function session (): StoredSession | null {
    const s = stored()
    if (s === null) return null
    if (s.expiresAt <= Date.now()) {
      if (s.refreshToken === undefined) forget()
      return null
    }
    return s
  }

  function keep (body: any, user?: any): void {
    const expiresAt = Date.now() + body.expires_in * 1000
    const s: StoredSession = { token: body.token, expiresAt, user: body.user ?? user }
    if (typeof body.refresh_token === 'string') s.refreshToken = body.refresh_token
    api.setStorageSync(storageKey, s)
  }

  const refused = (res: RequestAnswer, traceId?: string): LoginError => {
    const d = res.data ?? {}
    const code = typeof d.error === 'string' ? d.error : `http_${res.statusCode}`
    const message = typeof d.message === 'string' ? d.message : `HTTP ${res.statusCode}`
    return new LoginError(code, message, res.statusCode, d.wechat_errcode, traceId)
  }

  /** One attempt: its codes and retry_key are sent again, unchanged, on every retry. */
  async function attempt (extra: Record<string, unknown>, freshAfterInvalid: boolean): Promise<any> {
    const body: Record<string, unknown> = { ...extra, code: await wxLogin(), retry_key: await retryKey() }
    if (options.appid !== undefined) body.appid = options.appid
    const traceId = newTraceId()
    let lastError: LoginError = new LoginError('network_error', 'no attempt made', undefined, undefined, traceId)
    for (let i = 0; i < retry.attempts; i++) {
      if (i > 0) await sleep(retry.baseDelayMs * Math.pow(2, i - 1))
      let res: RequestAnswer
      try {
        res = await call('/api/user/thirdLogin', 'POST', body, jsonBody(), traceId)
      } catch (err) {
        lastError = err as LoginError
        continue
      }
      if (res.statusCode === 200) { keep(res.data); return res.data }
      const err = refused(res, traceId)
      if (res.statusCode >= 500) { lastError = err; continue }
      if (res.statusCode === 429) {
        const after = Number(res.header['Retry-After'] ?? res.header['retry-after'] ?? 0) * 1000
        if (after > retry.maxRetryAfterMs) throw err
        await sleep(after)
        i--
        lastError = err
        continue
      }
      if (err.code === 'invalid_code' && freshAfterInvalid) return await attempt(extra, false)
      throw err
    }
    throw lastError
  }

  let inflight: Promise<any> | null = null
  function login (opts: { phoneCode?: string, nickname?: string, head_pic?: string } = {}): Promise<any> {
    if (inflight !== null) return inflight
    const extra: Record<string, unknown> = {}
    if (opts.phoneCode !== undefined) extra.phoneCode = opts.phoneCode
    if (opts.nickname !== undefined) extra.nickname = opts.nickname
    if (opts.head_pic !== undefined) extra.head_pic = opts.head_pic
    const p = attempt(extra, true)
    inflight = p
    const clear = (): void => { if (inflight === p) inflight = null }
    p.then(clear, clear)
    return p
  }

  /**
   * Signed sessions (SESSION_FORMAT=jwt): the refresh token for a new pair, shared by every
   * request that needs it. A lost answer is sent again with the same refresh token (the server
   * answers the same successor for a few seconds); a refused one ends the session. True when a
   * new pair is stored.
   */
  let refreshing: Promise<boolean> | null = null
  function refresh (): Promise<boolean> {
    if (refreshing !== null) return refreshing
    const p = (async (): Promise<boolean> => {
      const s = stored()
      if (s === null || s.refreshToken === undefined) return false
      for (let i = 0; i < retry.attempts; i++) {
        if (i > 0) await sleep(retry.baseDelayMs * Math.pow(2, i - 1))
        let res: RequestAnswer
        try {
          res = await call('/api/user/token/refresh', 'POST', { refresh_token: s.refreshToken }, jsonBody())
        } catch (e) {
          continue
        }
        if (res.statusCode === 200) { keep(res.data, s.user); return true }
        if (res.statusCode >= 500) continue
        // Spent, revoked or expired: only a new login helps.
        if (stored()?.refreshToken === s.refreshToken) forget()
        return false
      }
      return false
    })()
    refreshing = p
    const clear = (): void => { if (refreshing === p) refreshing = null }
    p.then(clear, clear)
    return p
  }

  /** A refresh a minute before the access token expires, so requests rarely meet a 401. */
  const REFRESH_AHEAD_MS = 60000
  async function liveToken (): Promise<string | undefined> {
    const s = stored()
    if (s !== null && s.refreshToken !== undefined && s.expiresAt - Date.now() < REFRESH_AHEAD_MS) await refresh()
    return session()?.token
  }

  async function request (opts: RequestOptions): Promise<RequestAnswer> {
    const traceId = newTraceId()
    const send = (token: string | undefined): Promise<RequestAnswer> => {
      const auth: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
      return call(opts.url, opts.method ?? 'GET', opts.data, { ...opts.header, ...auth }, traceId)
    }
    const used = await liveToken()
    const res = await send(used)
    if (res.statusCode !== 401) return res
    // Another request may have refreshed or logged in meanwhile: replay with its session; else
    // one refresh, or failing that one silent login (code only), shared by every request that
    // met the 401.
    const now = session()?.token
    if (now === undefined || now === used) {
      if (!(await refresh())) await login()
    }
    const again = await send(session()?.token)
    if (again.statusCode === 401) throw refused(again, traceId)
    return again
  }

  async function bindPhone (phoneCode: string): Promise<any> {
    const res = await request({ url: '/api/user/phone', method: 'POST', data: { phoneCode }, header: jsonBody() })
    if (res.statusCode !== 200) throw refused(res)
    const s = session()
    if (s !== null) api.setStorageSync(storageKey, { ...s, user: res.data })
    return res.data
  }

  async function logout (opts: { all?: boolean } = {}): Promise<void> {
    // An expired access token is refreshed first: logout then ends its refresh family too.
    await liveToken().catch(() => undefined)
    const s = session()
    try {
      const url = `/api/user/logout${opts.all === true ? '?all=true' : ''}`
      if (s !== null) await call(url, 'POST', undefined, { ...jsonBody(), authorization: `Bearer ${s.token}` })
    } finally {
      try { api.removeStorageSync(storageKey) } catch (e) {}
    }
  }

  function needsPhone (): boolean {
    // The stored user, even while its access token waits for a refresh: it is who logged in.
    const s = stored()
    return s === null || s.user == null || typeof s.user.phone_verified_at !== 'string'
  }

  return { login, bindPhone, request, session, logout, phoneCodeFrom, needsPhone }
}
