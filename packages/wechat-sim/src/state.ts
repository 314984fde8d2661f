import { APIS, rand, type Api, type Outcome, type RidRecord } from './apis.js'
import { CodeBook, type MintedLoginCode, type PhoneAnswer } from './code-book.js'
import { QuotaBook } from './quota-book.js'
import { ChargeBook } from './charge-book.js'

export { APIS, CGI_PATHS, type Api, type Outcome, type RidRecord } from './apis.js'

export interface SimApp {
  appid: string
  secret: string
}

export interface SimOptions {
  apps?: SimApp[]
  /** Lifetime of a new access_token, seconds (WeChat: 7200). */
  tokenExpiresIn?: number
  /** How long a classic token stays valid after a newer one is issued, seconds (WeChat: ~300). */
  classicOverlapSeconds?: number
  /** A stable token is renewed when less than this remains, seconds (WeChat: ~300). */
  stableRenewBeforeSeconds?: number
  /** Life of login and phone codes, seconds (WeChat: 300). */
  codeTtlSeconds?: number
  /** getuserphonenumber calls per openid per minute before 45011; 0 = no limit. */
  phoneLimitPerMinute?: number
  /** Force-refreshes of a stable token per day, and the pause between two (WeChat: 20, 30 s). */
  forceRefreshPerDay?: number
  forceRefreshMinIntervalSeconds?: number
  now?: () => number
}

interface TokenInfo {
  appid: string
  expiresAt: number
}
/** The simulator's whole state and rules, with no HTTP in it, so each rule is testable alone. */
export class SimState {
  readonly apps = new Map<string, string>()
  private readonly tokens = new Map<string, TokenInfo>()
  private readonly classicLatest = new Map<string, string>()
  private readonly stableCurrent = new Map<string, string>()
  private readonly forceLog = new Map<string, number[]>()
  readonly calls = Object.fromEntries(APIS.map(a => [a, 0])) as Record<Api, number>
  /**
   * TCP connections that carried WeChat API calls (control calls not counted): far fewer than
   * the calls when callers keep connections alive, as the services do.
   */
  apiConnections = 0
  /** Login and phone codes: minted, exchanged once, counted. */
  readonly codes: CodeBook
  /** stable_token force calls that replaced the token (each one invalidates the one before). */
  forcedRefreshes = 0
  /** Calls whose caller hung up before the answer: counted in `calls`, never processed. */
  readonly abandoned = Object.fromEntries(APIS.map(a => [a, 0])) as Record<Api, number>
  private readonly tickets = new Map<string, { ticket: string, expiresAt: number }>()
  /** Today's counts per API, clear_quota, and the rids of failed calls. */
  readonly quotas = new QuotaBook()
  readonly charges = new ChargeBook()
  readonly opts: Required<Omit<SimOptions, 'apps'>>

  constructor (options: SimOptions = {}) {
    this.opts = {
      tokenExpiresIn: options.tokenExpiresIn ?? 7200,
      classicOverlapSeconds: options.classicOverlapSeconds ?? 300,
      stableRenewBeforeSeconds: options.stableRenewBeforeSeconds ?? 300,
      codeTtlSeconds: options.codeTtlSeconds ?? 300,
      phoneLimitPerMinute: options.phoneLimitPerMinute ?? 0,
      forceRefreshPerDay: options.forceRefreshPerDay ?? 20,
      forceRefreshMinIntervalSeconds: options.forceRefreshMinIntervalSeconds ?? 30,
      now: options.now ?? Date.now
    }
    for (const app of options.apps ?? []) this.apps.set(app.appid, app.secret)
    this.codes = new CodeBook(() => this.now(), this.opts)
  }

  /** Codes presented again after their exchange (a caller spending a code twice). */
  get reusedCodes (): { login: number, phone: number } {
    return this.codes.reused
  }

  /** Codes exchanged (phone: billed). */
  get exchangedCodes (): { login: number, phone: number } {
    return this.codes.exchanged
  }

  private now (): number {
    return this.opts.now()
  }

  reset (): void {
    this.tokens.clear()
    this.classicLatest.clear()
    this.stableCurrent.clear()
    this.forceLog.clear()
    this.codes.reset()
    this.tickets.clear()
    this.quotas.reset()
    this.charges.reset()
    for (const api of APIS) {
      this.calls[api] = 0
      this.abandoned[api] = 0
    }
    this.forcedRefreshes = 0
    this.apiConnections = 0
  }

  addApp (appid: string, secret: string): void {
    this.apps.set(appid, secret)
  }

  /** appid/secret checks shared by the APIs that take the appsecret. */
  checkCredentials (appid: string | undefined, secret: string | undefined): number {
    if (appid === undefined || appid === '') return 41002
    if (secret === undefined || secret === '') return 41004
    const known = this.apps.get(appid)
    if (known === undefined) return 40013
    if (known !== secret) return 40125
    return 0
  }

  private issue (appid: string): { access_token: string, expires_in: number } {
    const token = `${rand(96)}`
    const expiresAt = this.now() + this.opts.tokenExpiresIn * 1000
    this.tokens.set(token, { appid, expiresAt })
    return { access_token: token, expires_in: this.opts.tokenExpiresIn }
  }

  /** GET /cgi-bin/token: every call a new token; the previous one lives on for the overlap only. */
  classicToken (
    appid: string,
    secret: string,
    grantType: string | undefined
  ): Outcome<{ access_token: string, expires_in: number }> {
    if (grantType !== 'client_credential') return { ok: false, errcode: 40002 }
    const cred = this.checkCredentials(appid, secret)
    if (cred !== 0) return { ok: false, errcode: cred }
    this.quotas.use(appid, 'token')
    const previous = this.classicLatest.get(appid)
    if (previous !== undefined) {
      const info = this.tokens.get(previous)
      if (info !== undefined) {
        info.expiresAt = Math.min(info.expiresAt, this.now() + this.opts.classicOverlapSeconds * 1000)
      }
    }
    const issued = this.issue(appid)
    this.classicLatest.set(appid, issued.access_token)
    return { ok: true, value: issued }
  }

  /** POST /cgi-bin/stable_token: the same token while valid; force mode replaces it, within limits. */
  stableToken (
    appid: string,
    secret: string,
    grantType: string | undefined,
    force: boolean
  ): Outcome<{ access_token: string, expires_in: number }> {
    if (grantType !== 'client_credential') return { ok: false, errcode: 40002 }
    const cred = this.checkCredentials(appid, secret)
    if (cred !== 0) return { ok: false, errcode: cred }
    this.quotas.use(appid, 'stable_token')
    const now = this.now()
    const current = this.stableCurrent.get(appid)
    const info = current !== undefined ? this.tokens.get(current) : undefined
    if (force) {
      const day = (this.forceLog.get(appid) ?? []).filter(t => t > now - 86_400_000)
      const last = day[day.length - 1]
      if (day.length >= this.opts.forceRefreshPerDay) return { ok: false, errcode: 45009 }
      if (last !== undefined && now - last < this.opts.forceRefreshMinIntervalSeconds * 1000) {
        return { ok: false, errcode: 45011 }
      }
      day.push(now)
      this.forceLog.set(appid, day)
      this.forcedRefreshes++
      if (info !== undefined) info.expiresAt = now
    } else if (
      current !== undefined &&
      info !== undefined &&
      info.expiresAt - now > this.opts.stableRenewBeforeSeconds * 1000
    ) {
      return { ok: true, value: { access_token: current, expires_in: Math.floor((info.expiresAt - now) / 1000) } }
    }
    const issued = this.issue(appid)
    this.stableCurrent.set(appid, issued.access_token)
    return { ok: true, value: issued }
  }

  /**
   * WeChat revoking tokens (a secret reset, another party's force refresh): the token, or every
   * token of the app, answers 40001 from now on, and the next token call issues a new one.
   */
  revoke (appid: string | undefined, token: string | undefined): number {
    let n = 0
    for (const [t, info] of this.tokens) {
      if ((token !== undefined && t === token) || (token === undefined && info.appid === appid)) {
        this.tokens.delete(t)
        if (this.stableCurrent.get(info.appid) === t) this.stableCurrent.delete(info.appid)
        if (this.classicLatest.get(info.appid) === t) this.classicLatest.delete(info.appid)
        n++
      }
    }
    return n
  }

  /** GET /cgi-bin/getcallbackip: read-only, so a cheap way to ask whether a token works. */
  callbackIp (accessToken: string | undefined): Outcome<{ ip_list: string[] }> {
    const tok = this.checkAccessToken(accessToken)
    if (!tok.ok) return tok
    this.quotas.use(tok.value, 'getcallbackip')
    return { ok: true, value: { ip_list: ['101.226.103.0/25', '101.226.62.0/26'] } }
  }

  /** Every access_token issued so far (tests search logs for them). */
  issuedTokens (): string[] {
    return [...this.tokens.keys()]
  }

  /** The app a valid token belongs to, or WeChat's errcode for a missing, unknown or expired one. */
  checkAccessToken (token: string | undefined): Outcome<string> {
    if (token === undefined || token === '') return { ok: false, errcode: 41001 }
    const info = this.tokens.get(token)
    if (info === undefined) return { ok: false, errcode: 40001 }
    if (info.expiresAt <= this.now()) return { ok: false, errcode: 42001 }
    return { ok: true, value: info.appid }
  }

  mintLoginCode (appid: string, openid?: string, unionid?: string | null): MintedLoginCode {
    return this.codes.mintLogin(appid, openid, unionid)
  }

  code2session (
    appid: string,
    secret: string,
    jsCode: string | undefined,
    grantType: string | undefined
  ): Outcome<{ openid: string, session_key: string, unionid?: string }> {
    if (grantType !== 'authorization_code') return { ok: false, errcode: 40002 }
    const cred = this.checkCredentials(appid, secret)
    if (cred !== 0) return { ok: false, errcode: cred }
    return this.codes.useLogin(appid, jsCode)
  }

  mintPhoneCode (appid: string, purePhoneNumber: string, countryCode = '86', openid?: string): { code: string } {
    return this.codes.mintPhone(appid, purePhoneNumber, countryCode, openid)
  }

  phoneNumber (
    accessToken: string | undefined,
    code: string | undefined,
    openid: string | undefined
  ): Outcome<PhoneAnswer> {
    const tok = this.checkAccessToken(accessToken)
    if (!tok.ok) return tok
    this.quotas.use(tok.value, 'getuserphonenumber')
    const out = this.codes.usePhone(tok.value, code, openid)
    if (out.ok) this.charges.bill(tok.value)
    return out
  }

  /** GET /cgi-bin/ticket/getticket: the same ticket while more than stableRenewBeforeSeconds of it remain. */
  ticket (accessToken: string | undefined, type: string | undefined): Outcome<{ ticket: string, expires_in: number }> {
    const tok = this.checkAccessToken(accessToken)
    if (!tok.ok) return tok
    if (type !== 'jsapi' && type !== 'wx_card') return { ok: false, errcode: 40097 }
    this.quotas.use(tok.value, 'getticket')
    const now = this.now()
    const key = `${tok.value}:${type}`
    let t = this.tickets.get(key)
    if (t === undefined || t.expiresAt - now <= this.opts.stableRenewBeforeSeconds * 1000) {
      t = { ticket: rand(64), expiresAt: now + this.opts.tokenExpiresIn * 1000 }
      this.tickets.set(key, t)
    }
    return { ok: true, value: { ticket: t.ticket, expires_in: Math.floor((t.expiresAt - now) / 1000) } }
  }

  /** POST /cgi-bin/openapi/quota/get. */
  quota (
    accessToken: string | undefined,
    cgiPath: unknown
  ): Outcome<{ quota: { daily_limit: number, used: number, remain: number } }> {
    const tok = this.checkAccessToken(accessToken)
    return tok.ok ? this.quotas.quota(tok.value, cgiPath) : tok
  }

  /** POST /cgi-bin/clear_quota/v2 with the appsecret: today's counts start again, 10 times a month. */
  clearQuota (appid: string | undefined, appsecret: string | undefined): Outcome<true> {
    const cred = this.checkCredentials(appid, appsecret)
    return cred !== 0 ? { ok: false, errcode: cred } : this.quotas.clear(appid as string)
  }

  /** Keeps what an erroneous call sent and got, for openapi/rid/get; returns its rid. */
  recordRid (record: RidRecord): string {
    return this.quotas.recordRid(this.now(), record)
  }

  /** POST /cgi-bin/openapi/rid/get. */
  rid (accessToken: string | undefined, rid: unknown): Outcome<{ request: RidRecord }> {
    const tok = this.checkAccessToken(accessToken)
    return tok.ok ? this.quotas.rid(tok.value, rid) : tok
  }
}
