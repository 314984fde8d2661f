import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { maskPhone, toServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { PhoneInfo } from '../user-store.js'

declare module 'fastify' {
  interface FastifyRequest {
    phoneLimitKey: string
  }
  interface FastifyInstance {
    /**
     * One getuserphonenumber exchange under the per-user limit (PHONE_RATE_LIMIT_MAX per
     * window): counted, or refused with 429 before WeChat is called. Logged with a masked number.
     */
    exchangePhone: (request: FastifyRequest, reply: FastifyReply, openid: string, phoneCode: string) => Promise<PhoneInfo>
  }
}

export default fp(async (app) => {
  const { loginConfig: config, loginMetrics: metrics } = app
  app.decorateRequest('phoneLimitKey', '')
  const limiter = app.createRateLimit({
    max: config.phoneRateLimitMax,
    timeWindow: config.phoneRateLimitWindowSeconds * 1000,
    keyGenerator: (request: FastifyRequest) => request.phoneLimitKey,
    skipOnError: false
  })

  async function checkLimit (request: FastifyRequest, reply: FastifyReply, openid: string): Promise<void> {
    request.phoneLimitKey = `phone:${config.appid}:${openid}`
    let verdict
    try {
      verdict = await limiter(request)
    } catch (err) {
      throw errors.storeUnavailable(err)
    }
    if (verdict.isAllowed) return
    reply.header('x-ratelimit-limit', verdict.max)
    reply.header('x-ratelimit-remaining', verdict.remaining)
    reply.header('x-ratelimit-reset', verdict.ttlInSeconds)
    if (verdict.isExceeded) {
      metrics.rateLimited.inc({ scope: 'user' })
      throw errors.rateLimited(Math.max(1, verdict.ttlInSeconds))
    }
  }

  app.decorate('exchangePhone', async (request: FastifyRequest, reply: FastifyReply, openid: string, phoneCode: string): Promise<PhoneInfo> => {
    await checkLimit(request, reply, openid)
    try {
      const phone = await app.phones.exchange(openid, phoneCode)
      metrics.phoneExchanges.inc({ result: 'ok' })
      request.log.info({ phone: maskPhone(phone.purePhoneNumber) }, 'phone number exchanged')
      return phone
    } catch (err) {
      const se = toServiceError(err)
      request.log.warn({ error: se.code, wechat_errcode: se.wechatErrcode, detail: se.detail }, 'phone exchange failed')
      metrics.phoneExchanges.inc({ result: se.code })
      if (se.code === 'rate_limited') metrics.rateLimited.inc({ scope: 'user' })
      throw se
    }
  })
}, { name: 'phone-limit', dependencies: ['ip-limit', 'upstreams'] })
