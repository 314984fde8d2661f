import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { maskPhone, toServiceError } from '@wxlogin/service-kit'
import { exchangeOnce } from '../exchanges/code-exchanges.js'
import type { CountedClaim } from '../exchanges/exchange-store.js'
import { errors } from '../errors.js'
import type { PhoneInfo } from '../users/user-store.js'

/** The number, and its exchange being kept for retries: await `settled` before answering. */
export interface PhoneExchange {
  phone: PhoneInfo
  settled: Promise<void>
  key: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A phoneCode exchanged at most once: a retry gets the kept answer (not counted against the
     * limit, not billed again). A new exchange is counted against the per-user limit
     * (PHONE_RATE_LIMIT_MAX per window) or refused with 429 before WeChat is called, which
     * leaves the code usable after Retry-After.
     */
    exchangePhone: (
      request: FastifyRequest,
      reply: FastifyReply,
      appid: string,
      openid: string,
      phoneCode: string
    ) => Promise<PhoneExchange>
  }
}

export default fp(
  async app => {
    const { loginConfig: config, loginMetrics: metrics } = app
    // The broker's exchange (its token recovery and WeChat's answer included), and a margin.
    const worstCallMs = config.brokerTimeoutMs + 1000
    const windowMs = config.phoneRateLimitWindowSeconds * 1000
    const max = config.phoneRateLimitMax

    /** Counted in the same round trip as the code's claim. */
    const counterKey = (appid: string, openid: string): string => app.loginKeys.phoneCounter(appid, openid)
    const cluster = app.redis?.mode === 'cluster'
    const phoneExchangeKey = (appid: string, openid: string, phoneCode: string): string =>
      app.loginKeys.phoneExchange(appid, openid, phoneCode, cluster)

    function verdict (reply: FastifyReply, count: CountedClaim): void {
      const resetSeconds = Math.max(1, Math.ceil(count.ttlMs / 1000))
      reply.header('x-ratelimit-limit', max)
      reply.header('x-ratelimit-remaining', Math.max(0, max - count.current))
      reply.header('x-ratelimit-reset', resetSeconds)
      if (count.current > max) {
        metrics.rateLimited.inc({ scope: 'user' })
        throw errors.rateLimited(resetSeconds)
      }
    }

    async function exchange (
      request: FastifyRequest,
      appid: string,
      openid: string,
      phoneCode: string,
      key: string
    ): Promise<PhoneInfo> {
      try {
        const phone = await app.phones.exchange(appid, openid, phoneCode, key)
        metrics.phoneExchanges.inc({ result: 'ok' })
        request.log.info({ phone: maskPhone(phone.purePhoneNumber) }, 'phone number exchanged')
        return phone
      } catch (err) {
        const se = toServiceError(err)
        request.log.warn(
          { error: se.code, wechat_errcode: se.wechatErrcode, detail: se.detail },
          'phone exchange failed'
        )
        metrics.phoneExchanges.inc({ result: se.code })
        if (se.code === 'rate_limited') metrics.rateLimited.inc({ scope: 'user' })
        throw se
      }
    }

    app.decorate(
      'exchangePhone',
      async (
        request: FastifyRequest,
        reply: FastifyReply,
        appid: string,
        openid: string,
        phoneCode: string
      ): Promise<PhoneExchange> => {
        // Bound to the openid: another user's request with this code never gets this number.
        const key = phoneExchangeKey(appid, openid, phoneCode)
        // Kept sealed (PII_ENCRYPTION_KEY_FILE), bound to this exchange's key.
        const result = await exchangeOnce(
          app.exchanges,
          key,
          async () => app.pii.seal(await exchange(request, appid, openid, phoneCode, key), key),
          {
            waitMs: worstCallMs,
            final: se => se.code === 'invalid_phone_code',
            // Indexed under the identity as it is kept: logout everywhere and deletion take it back.
            identity: () => ({ appid, openid }),
            // Only a new exchange counts against the limit; refused, the code stays unused.
            limit: {
              counter: { key: counterKey(appid, openid), windowMs, max },
              verdict: count => {
                verdict(reply, count)
              }
            }
          }
        )
        if (result.reused) metrics.codeReuses.inc({ kind: 'phone' })
        return { phone: app.pii.open<PhoneInfo>(result.value, key), settled: result.settled, key }
      }
    )
  },
  { name: 'phone-limit', dependencies: ['ip-limit', 'upstreams', 'stores'] }
)
