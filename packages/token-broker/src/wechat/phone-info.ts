import { errors } from '../errors.js'

/** getuserphonenumber's `phone_info`, as the broker answers it (the watermark checked and dropped). */
export interface PhoneInfo {
  phoneNumber: string
  purePhoneNumber: string
  countryCode: string
}

/** A phone number's shape: digits where digits belong (null: not a phone number). */
export function parsePhoneInfo (v: unknown): PhoneInfo | null {
  const info = v as Record<string, unknown> | null | undefined
  if (
    info === null ||
    typeof info !== 'object' ||
    typeof info.purePhoneNumber !== 'string' ||
    typeof info.countryCode !== 'string' ||
    !/^\d{4,20}$/.test(info.purePhoneNumber) ||
    !/^\d{1,4}$/.test(info.countryCode) ||
    (info.phoneNumber !== undefined &&
      (typeof info.phoneNumber !== 'string' || !/^\+?\d{4,24}$/.test(info.phoneNumber)))
  ) {
    return null
  }
  return {
    phoneNumber: typeof info.phoneNumber === 'string' ? info.phoneNumber : info.purePhoneNumber,
    purePhoneNumber: info.purePhoneNumber,
    countryCode: info.countryCode
  }
}

/**
 * WeChat's answer, checked: a well-formed number, and a watermark naming this app. A phone
 * stamped for another app is someone else's exchange, never handed to a caller of this one.
 */
export function phoneFromWechat (body: Record<string, unknown>, appid: string): PhoneInfo {
  const raw = body.phone_info as Record<string, unknown> | undefined
  const info = parsePhoneInfo(raw)
  if (info === null) throw errors.upstreamUnavailable('getuserphonenumber answered without a well-formed phone_info')
  const watermark = raw?.watermark as { appid?: unknown } | undefined
  if (watermark?.appid !== appid) {
    throw errors.upstreamUnavailable('getuserphonenumber answered with a watermark for another app')
  }
  return info
}
