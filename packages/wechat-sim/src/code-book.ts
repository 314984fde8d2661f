import { rand, type Outcome } from './apis.js'

interface LoginCode {
  appid: string
  openid: string
  unionid: string | undefined
  expiresAt: number
  used: boolean
}
interface PhoneCode {
  appid: string
  phoneNumber: string
  purePhoneNumber: string
  countryCode: string
  openid: string | undefined
  expiresAt: number
  used: boolean
}

export interface MintedLoginCode {
  code: string
  openid: string
  unionid: string | null
}
export interface PhoneAnswer {
  phoneNumber: string
  purePhoneNumber: string
  countryCode: string
  watermark: { timestamp: number, appid: string }
}

/**
 * Login and phone codes as WeChat treats them: single use, living `codeTtlSeconds`, a phone code
 * bound to the openid it was minted for; getuserphonenumber limited per openid and minute.
 */
export class CodeBook {
  private readonly logins = new Map<string, LoginCode>()
  private readonly phones = new Map<string, PhoneCode>()
  private readonly phoneCalls = new Map<string, number[]>()
  /** Codes presented again after their exchange (a caller spending a code twice). */
  readonly reused = { login: 0, phone: 0 }
  /** Codes exchanged (phone: billed). */
  readonly exchanged = { login: 0, phone: 0 }
  /** getuserriskrank's answer per openid (0 unless set through /__sim/risk-ranks). */
  readonly riskRanks = new Map<string, number>()

  constructor (
    private readonly now: () => number,
    private readonly opts: { codeTtlSeconds: number, phoneLimitPerMinute: number }
  ) {}

  reset (): void {
    this.logins.clear()
    this.phones.clear()
    this.phoneCalls.clear()
    this.riskRanks.clear()
    this.reused.login = this.reused.phone = this.exchanged.login = this.exchanged.phone = 0
  }

  mintLogin (appid: string, openid?: string, unionid?: string | null): MintedLoginCode {
    const code = rand(24)
    const oid = openid ?? `o${rand(20)}`
    const uid = unionid === null ? undefined : (unionid ?? undefined)
    const expiresAt = this.now() + this.opts.codeTtlSeconds * 1000
    this.logins.set(code, { appid, openid: oid, unionid: uid, expiresAt, used: false })
    return { code, openid: oid, unionid: uid ?? null }
  }

  /** code2session's part once the app's credentials are checked. */
  useLogin (
    appid: string,
    jsCode: string | undefined
  ): Outcome<{ openid: string, session_key: string, unionid?: string }> {
    if (jsCode === undefined || jsCode === '') return { ok: false, errcode: 41008 }
    const entry = this.logins.get(jsCode)
    if (entry === undefined || entry.appid !== appid || entry.expiresAt <= this.now()) {
      return { ok: false, errcode: 40029 }
    }
    if (entry.used) {
      this.reused.login++
      return { ok: false, errcode: 40163 }
    }
    entry.used = true
    this.exchanged.login++
    const value: { openid: string, session_key: string, unionid?: string } = {
      openid: entry.openid,
      session_key: rand(16)
    }
    if (entry.unionid !== undefined) value.unionid = entry.unionid
    return { ok: true, value }
  }

  mintPhone (appid: string, purePhoneNumber: string, countryCode = '86', openid?: string): { code: string } {
    const code = rand(32)
    this.phones.set(code, {
      appid,
      purePhoneNumber,
      countryCode,
      phoneNumber: countryCode === '86' ? purePhoneNumber : `+${countryCode}${purePhoneNumber}`,
      openid,
      expiresAt: this.now() + this.opts.codeTtlSeconds * 1000,
      used: false
    })
    return { code }
  }

  /** getuserphonenumber's part once the token is checked: `appid` is the token's app. */
  usePhone (appid: string, code: string | undefined, openid: string | undefined): Outcome<PhoneAnswer> {
    if (code === undefined || code === '') return { ok: false, errcode: 47001 }
    const limit = this.opts.phoneLimitPerMinute
    const now = this.now()
    if (limit > 0 && openid !== undefined) {
      const recent = (this.phoneCalls.get(openid) ?? []).filter(t => t > now - 60_000)
      if (recent.length >= limit) return { ok: false, errcode: 45011 }
      recent.push(now)
      this.phoneCalls.set(openid, recent)
    }
    const entry = this.phones.get(code)
    if (entry?.used === true) this.reused.phone++
    if (entry === undefined || entry.used || entry.expiresAt <= now) return { ok: false, errcode: 40029 }
    if (entry.appid !== appid) return { ok: false, errcode: 40013 }
    if (openid !== undefined && entry.openid !== undefined && entry.openid !== openid) {
      return { ok: false, errcode: 40029 }
    }
    entry.used = true
    this.exchanged.phone++
    const { phoneNumber, purePhoneNumber, countryCode } = entry
    return {
      ok: true,
      value: { phoneNumber, purePhoneNumber, countryCode, watermark: { timestamp: Math.floor(now / 1000), appid } }
    }
  }
}
