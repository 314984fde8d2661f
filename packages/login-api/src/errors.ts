import { ServiceError } from '@wxlogin/service-kit'

/** Every error the login-api answers with: code, message, status (and WeChat's errcode where it answered). */
export const errors = {
  unauthorized: () =>
    new ServiceError('unauthorized', 'A valid session is required (Authorization: Bearer <token>).', 401),
  /** Spent, revoked, expired or unknown: the same answer for each, so a thief learns nothing. */
  invalidRefreshToken: () =>
    new ServiceError(
      'invalid_refresh_token',
      'The refresh token is invalid, expired, revoked or already used; log in again.',
      401
    ),
  invalidCode: (errcode?: number) =>
    new ServiceError(
      'invalid_code',
      'The login code is invalid, expired or already used; call wx.login() again.',
      400,
      { wechatErrcode: errcode }
    ),
  invalidPhoneCode: (errcode?: number) =>
    new ServiceError(
      'invalid_phone_code',
      'The phone code is invalid, expired or already used; ask the user again.',
      400,
      { wechatErrcode: errcode }
    ),
  rateLimited: (retryAfterSeconds: number, errcode?: number) =>
    new ServiceError('rate_limited', `Too many phone number requests; retry in ${retryAfterSeconds} s.`, 429, {
      headers: { 'retry-after': String(retryAfterSeconds) },
      wechatErrcode: errcode
    }),
  codeSpray: (retryAfterSeconds: number) =>
    new ServiceError(
      'rate_limited',
      `Too many invalid login codes from this network; retry in ${retryAfterSeconds} s.`,
      429,
      { headers: { 'retry-after': String(retryAfterSeconds) } }
    ),
  ipRateLimited: (retryAfterSeconds: number) =>
    new ServiceError('rate_limited', `Too many requests; retry in ${retryAfterSeconds} s.`, 429),
  highRiskUser: (errcode?: number) =>
    new ServiceError('high_risk_user', 'WeChat blocked this user as high-risk.', 403, { wechatErrcode: errcode }),
  /** `what` is public (WeChat, the token service); `detail` goes to the log only. */
  upstreamUnavailable: (what: 'WeChat' | 'the token service', detail: string, errcode?: number, cause?: unknown) =>
    new ServiceError(
      'upstream_unavailable',
      `${what === 'WeChat' ? 'WeChat' : 'The token service'} is unavailable; retry shortly.`,
      503,
      { detail, wechatErrcode: errcode, cause }
    ),
  exchangeInProgress: () =>
    new ServiceError(
      'exchange_in_progress',
      'Another request with this code is still being answered; retry in a second.',
      503,
      { headers: { 'retry-after': '1' } }
    ),
  unknownApp: (detail: string) =>
    new ServiceError('unknown_app', `This login service does not serve that mini-program: ${detail}.`, 400),
  /**
   * A value sealed under a key id that PII_ENCRYPTION_KEY_FILE no longer lists: the operator removed
   * a line before `pnpm pii-reseal --check` passed (docs/security.md). `detail` names the key id.
   */
  sealedUnreadable: (keyId: string) =>
    new ServiceError('store_unavailable', 'User storage is unavailable; retry shortly.', 503, {
      detail: `personal data sealed under key id ${keyId}, which PII_ENCRYPTION_KEY_FILE does not hold: restore that ` +
        'line, then run pnpm pii-reseal'
    }),
  storeUnavailable: (cause?: unknown) =>
    new ServiceError('store_unavailable', 'User storage is unavailable; retry shortly.', 503, { cause }),
  wechatError: (errcode: number) =>
    new ServiceError('wechat_error', `WeChat refused the phone number request (errcode ${errcode}).`, 502, {
      wechatErrcode: errcode
    })
}
