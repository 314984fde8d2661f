import { Counter, type Registry } from 'prom-client'
import { createWechatApiMetrics, type WechatApiMetrics } from '@wxlogin/service-kit'

export interface LoginMetrics {
  wechat: WechatApiMetrics
  logins: Counter<'result'>
  phoneExchanges: Counter<'result'>
  rateLimited: Counter<'scope'>
}

export function createLoginMetrics (registry: Registry): LoginMetrics {
  return {
    wechat: createWechatApiMetrics(registry),
    logins: new Counter({ name: 'login_requests_total', help: 'thirdLogin requests by result (ok or the error code).', labelNames: ['result'] as const, registers: [registry] }),
    phoneExchanges: new Counter({ name: 'login_phone_exchanges_total', help: 'phoneCode exchanges by result (ok or the error code).', labelNames: ['result'] as const, registers: [registry] }),
    rateLimited: new Counter({ name: 'login_rate_limited_total', help: 'Requests refused by a rate limit, by scope (ip, user).', labelNames: ['scope'] as const, registers: [registry] })
  }
}
