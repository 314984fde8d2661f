import type { WechatOutcome } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import { phoneFromWechat, type PhoneInfo } from './phone-info.js'
import { TOKEN_REJECTED, transportError, type WechatClient } from './wechat-client.js'

/** The phone code itself is bad: the user has to tap the button again. */
const CODE_ERRCODES = new Set([40029, 40163, 47001, 41008])

/** A paid capability's quota this period, as WeChat counts it. */
export interface ChargeUsage {
  used: number
  total: number
}

/** WeChat's calls about phone numbers and what they cost (see docs/phone-billing.md). */
export class PhoneCalls {
  constructor (private readonly wechat: WechatClient) {}

  /**
   * getuserphonenumber. Never retried once it may have reached WeChat: the code may already be
   * spent, and every success is billed. A token WeChat refused is an error carrying its errcode,
   * for the caller's one recovery (compare-and-refresh, then once more).
   */
  async phoneNumber (
    appid: string,
    accessToken: string,
    code: string,
    openid: string | undefined,
    deadline: number
  ): Promise<PhoneInfo> {
    const { baseUrl, timeoutMs } = this.wechat.opts
    const outcome = await this.wechat.withRetries(
      {
        api: 'getuserphonenumber',
        method: 'POST',
        url: `${baseUrl}/wxa/business/getuserphonenumber`,
        searchParams: { access_token: accessToken },
        json: openid === undefined ? { code } : { code, openid },
        timeoutMs
      },
      o => o.kind === 'network' && !o.sent,
      deadline
    )
    if (outcome.kind === 'ok') return phoneFromWechat(outcome.body, appid)
    if (outcome.kind !== 'errcode') throw transportError(outcome)
    const { errcode } = outcome
    if (TOKEN_REJECTED.has(errcode)) throw errors.wechatError(errcode, 'the access_token')
    if (CODE_ERRCODES.has(errcode)) throw errors.invalidPhoneCode(errcode)
    if (errcode === 45011) throw errors.rateLimited(errcode)
    if (errcode === -1) throw errors.upstreamUnavailable('WeChat is busy', -1)
    throw errors.wechatError(errcode, 'the phone number exchange')
  }

  /**
   * POST /wxa/getuserriskrank: WeChat's risk rank of a user (0 lowest to 4 highest) for a scene
   * (0: registration, 1: marketing). A read: retried like one.
   */
  async riskRank (
    appid: string,
    accessToken: string,
    ask: { openid: string, scene: number, clientIp: string },
    deadline: number
  ): Promise<number> {
    const { baseUrl, timeoutMs } = this.wechat.opts
    const outcome = await this.wechat.withRetries(
      {
        api: 'getuserriskrank',
        method: 'POST',
        url: `${baseUrl}/wxa/getuserriskrank`,
        searchParams: { access_token: accessToken },
        json: { appid, openid: ask.openid, scene: ask.scene, client_ip: ask.clientIp },
        timeoutMs
      },
      o => o.kind === 'timeout' || o.kind === 'network' || (o.kind === 'errcode' && o.errcode === -1),
      deadline
    )
    if (outcome.kind === 'errcode') {
      if (TOKEN_REJECTED.has(outcome.errcode)) throw errors.wechatError(outcome.errcode, 'the access_token')
      if (outcome.errcode === -1) throw errors.upstreamUnavailable('WeChat is busy', -1)
      throw errors.wechatError(outcome.errcode, 'the risk rank query')
    }
    if (outcome.kind !== 'ok') throw transportError(outcome)
    const rank = outcome.body.risk_rank
    if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 0) {
      throw errors.upstreamUnavailable('getuserriskrank answered without a risk_rank')
    }
    return rank
  }

  /** GET /wxa/charge/usage/get: a spu's quota used and bought (a read: retried like one). */
  async usage (accessToken: string, spuId: string): Promise<ChargeUsage> {
    const { baseUrl, timeoutMs } = this.wechat.opts
    const outcome: WechatOutcome = await this.wechat.withRetries(
      {
        api: 'charge_usage_get',
        method: 'GET',
        url: `${baseUrl}/wxa/charge/usage/get`,
        searchParams: { access_token: accessToken, spuId, offset: '0', limit: '20' },
        timeoutMs
      },
      o => o.kind === 'timeout' || o.kind === 'network' || (o.kind === 'errcode' && o.errcode === -1)
    )
    if (outcome.kind === 'errcode') {
      if (TOKEN_REJECTED.has(outcome.errcode)) throw errors.wechatError(outcome.errcode, 'the access_token')
      throw errors.wechatError(outcome.errcode, 'the usage query')
    }
    if (outcome.kind !== 'ok') throw transportError(outcome)
    // 64-bit counts, as strings.
    const used = Number(outcome.body.effectiveUse ?? 0)
    const total = Number(outcome.body.all ?? outcome.body.effectiveAll ?? 0)
    if (!Number.isFinite(used) || !Number.isFinite(total)) {
      throw errors.upstreamUnavailable('the usage query answered without numbers')
    }
    return { used, total }
  }
}
