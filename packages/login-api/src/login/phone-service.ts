import type { Got } from 'got'
import type { BrokerClient } from '@wxlogin/broker-client'
import { BrokerError } from '@wxlogin/broker-client'
import { callWechat, type ServiceError, type WechatApiMetrics } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { PhoneInfo } from '../users/user-store.js'

/** The access_token was refused before the code was looked at: safe to retry once with a new one. */
const TOKEN_ERRCODES = new Set([40001, 42001, 40014])
/** The phone code itself is bad: the user has to tap the button again. */
const CODE_ERRCODES = new Set([40029, 40163, 47001, 41008])

export interface PhoneServiceOptions {
  got: Got
  broker: BrokerClient
  baseUrl: string
  timeoutMs: number
  metrics: WechatApiMetrics
}

export function brokerFailure (err: unknown): ServiceError {
  if (err instanceof BrokerError) {
    return errors.upstreamUnavailable(
      'the token service',
      `the token broker answered ${err.statusCode} ${err.code}: ${err.message}`,
      err.wechatErrcode,
      err
    )
  }
  return errors.upstreamUnavailable(
    'the token service',
    `the token broker cannot be reached: ${err instanceof Error ? err.message : 'error'}`,
    undefined,
    err
  )
}

/**
 * getuserphonenumber. Never retried on -1 or a timeout: the code may already be spent, and
 * every success is billed. Retried exactly once after a token error, with the token the
 * broker hands back for the rejected one.
 */
export class PhoneService {
  constructor (private readonly opts: PhoneServiceOptions) {}

  async exchange (appid: string, openid: string, phoneCode: string): Promise<PhoneInfo> {
    const { broker } = this.opts
    let token: string
    try {
      token = await broker.getAccessToken(appid)
    } catch (err) {
      throw brokerFailure(err)
    }
    for (let attempt = 0; ; attempt++) {
      const outcome = await callWechat(this.opts.got, this.opts.metrics, {
        api: 'getuserphonenumber',
        method: 'POST',
        url: `${this.opts.baseUrl}/wxa/business/getuserphonenumber`,
        searchParams: { access_token: token },
        json: { code: phoneCode, openid },
        timeoutMs: this.opts.timeoutMs
      })
      switch (outcome.kind) {
        case 'ok':
          return parsePhone(outcome.body, appid)
        case 'timeout':
          throw errors.upstreamUnavailable('WeChat', 'getuserphonenumber timed out')
        case 'network':
          throw errors.upstreamUnavailable('WeChat', `getuserphonenumber network error ${outcome.code}`)
        case 'http':
          throw errors.upstreamUnavailable('WeChat', `getuserphonenumber answered HTTP ${outcome.status}`)
      }
      const { errcode } = outcome
      if (TOKEN_ERRCODES.has(errcode)) {
        if (attempt > 0) throw errors.upstreamUnavailable('WeChat', 'WeChat rejected the access_token twice', errcode)
        try {
          token = await broker.invalidate(appid, token)
        } catch (err) {
          throw brokerFailure(err)
        }
        continue
      }
      if (CODE_ERRCODES.has(errcode)) throw errors.invalidPhoneCode(errcode)
      if (errcode === 45011) throw errors.rateLimited(60, errcode)
      if (errcode === -1) throw errors.upstreamUnavailable('WeChat', 'WeChat is busy (-1)', -1)
      throw errors.wechatError(errcode)
    }
  }
}

/**
 * The number, checked: digits where digits belong, and a watermark naming this app. A phone
 * stamped for another app is someone else's exchange, never stored for this user.
 */
function parsePhone (body: Record<string, unknown>, appid: string): PhoneInfo {
  const info = body.phone_info as Record<string, unknown> | undefined
  if (
    info === undefined ||
    typeof info.purePhoneNumber !== 'string' ||
    typeof info.countryCode !== 'string' ||
    !/^\d{4,20}$/.test(info.purePhoneNumber) ||
    !/^\d{1,4}$/.test(info.countryCode) ||
    (info.phoneNumber !== undefined &&
      (typeof info.phoneNumber !== 'string' || !/^\+?\d{4,24}$/.test(info.phoneNumber)))
  ) {
    throw errors.upstreamUnavailable('WeChat', 'getuserphonenumber answered without a well-formed phone_info')
  }
  const watermark = info.watermark as { appid?: unknown } | undefined
  if (watermark?.appid !== appid) {
    throw errors.upstreamUnavailable('WeChat', 'getuserphonenumber answered with a watermark for another app')
  }
  return {
    phoneNumber: typeof info.phoneNumber === 'string' ? info.phoneNumber : info.purePhoneNumber,
    purePhoneNumber: info.purePhoneNumber,
    countryCode: info.countryCode
  }
}
