import { ServiceError } from '@wxlogin/service-kit'

/** Every error the broker answers with: code, message, status (and WeChat's errcode where it answered). */
export const errors = {
  unauthorized: () =>
    new ServiceError('unauthorized', 'A valid client token is required (Authorization: Bearer <token>).', 401),
  forbidden: (appid: string) => new ServiceError('forbidden', `This client may not use app ${appid}.`, 403),
  apiNotAllowed: (name: string, path: string) =>
    new ServiceError(
      'forbidden',
      `Client ${name} may not call ${path.slice(0, 200)} ("apis" in BROKER_CLIENTS).`,
      403,
      {
        wechatErrcode: 40125
      }
    ),
  gatewayLimited: (client: { name: string, gatewayRate?: number, gatewayConcurrency?: number }, why: string) =>
    new ServiceError(
      'rate_limited',
      why === 'rate'
        ? `Client ${client.name} made more than ${client.gatewayRate} gateway calls a second here (gateway_rate).`
        : `Client ${client.name} has ${client.gatewayConcurrency} gateway calls in flight here (gateway_concurrency).`,
      429,
      { wechatErrcode: 45011, headers: { 'retry-after': '1' } }
    ),
  surrogateOnly: (name: string) =>
    new ServiceError(
      'forbidden',
      `Client ${name} is handed surrogate tokens only ("token_form" in BROKER_CLIENTS): call WeChat through ` +
        'the gateway.',
      403
    ),
  noEvents: (name: string) =>
    new ServiceError('forbidden', `Client ${name} receives no WeChat events ("events" in BROKER_CLIENTS).`, 403),
  storeUnavailable: (cause?: unknown) =>
    new ServiceError('store_unavailable', "The broker's store is unavailable; retry shortly.", 503, {
      headers: { 'retry-after': '1' },
      cause
    }),
  unknownApp: (appid: string) => new ServiceError('unknown_app', `The broker holds no app ${appid}.`, 404),
  invalidCode: (errcode: number) =>
    new ServiceError(
      'invalid_code',
      errcode === 40163 ? 'The login code was already used.' : 'The login code is invalid or expired.',
      400,
      { wechatErrcode: errcode }
    ),
  invalidPhoneCode: (errcode: number) =>
    new ServiceError(
      'invalid_phone_code',
      errcode === 40163 ? 'The phone code was already used.' : 'The phone code is invalid or expired.',
      400,
      { wechatErrcode: errcode }
    ),
  rateLimited: (errcode: number) =>
    new ServiceError('rate_limited', 'WeChat says this is too frequent; retry later.', 429, {
      wechatErrcode: errcode,
      headers: { 'retry-after': '60' }
    }),
  highRiskUser: (errcode: number) =>
    new ServiceError('high_risk_user', 'WeChat blocked this user as high-risk.', 403, { wechatErrcode: errcode }),
  upstreamUnavailable: (detail: string, errcode?: number, cause?: unknown) =>
    new ServiceError('upstream_unavailable', `WeChat is unavailable: ${detail}.`, 503, {
      wechatErrcode: errcode,
      cause
    }),
  wechatError: (errcode: number, what: string) =>
    new ServiceError('wechat_error', `WeChat refused ${what} (errcode ${errcode}).`, 502, { wechatErrcode: errcode }),
  tokenUnavailable: (appid: string) =>
    new ServiceError('token_unavailable', `No access_token for ${appid} could be had in time; retry.`, 503),
  forceRefreshThrottled: (appid: string, seconds: number) =>
    new ServiceError(
      'refresh_throttled',
      `The token of ${appid} was refreshed after an invalidation less than ${seconds} s ago. If the new token is ` +
        'rejected too, the cause is elsewhere.',
      429,
      { headers: { 'retry-after': String(seconds) } }
    ),
  budgetExhausted: (appid: string, limit: number, seconds: number, client?: string) =>
    new ServiceError(
      'refresh_budget_exhausted',
      `The token of ${appid} was refreshed after invalidations ${limit} times ` +
        `today${client === undefined ? '' : ` for client ${client} (its share)`} (TOKEN_INVALIDATION_DAILY_BUDGET); ` +
        "the rest of WeChat's daily quota is kept for the schedule. The budget resets at midnight UTC+8.",
      429,
      { headers: { 'retry-after': String(seconds) } }
    ),
  notAdmin: (name: string) =>
    new ServiceError('forbidden', `Client ${name} is not an admin client ("admin": true in BROKER_CLIENTS).`, 403),
  clearQuotaExhausted: (errcode: number) =>
    new ServiceError('clear_quota_exhausted', 'WeChat allows 10 quota resets a month, and they are used up.', 429, {
      wechatErrcode: errcode
    }),
  unknownRid: (errcode: number) =>
    new ServiceError('unknown_rid', 'WeChat knows no request with this rid (it keeps them for a few days).', 404, {
      wechatErrcode: errcode
    }),
  sameTokenAgain: () => new ServiceError('wechat_error', 'WeChat issued the rejected token again.', 502)
}
