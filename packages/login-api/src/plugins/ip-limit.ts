import fp from 'fastify-plugin'
import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { clientAddress, limitAddress } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import { nodeRedisRateLimitStore } from '../limits/rate-limit-store.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The login route's IP verdict: started in its onRequest hook and awaited where the login
     * needs it, so its count rides in the same round trip as the code's claim. Rejects with the
     * 429 when the address is over its limit.
     */
    ipLimit: Promise<void>
  }
  interface FastifyInstance {
    startIpLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/**
 * Per client IP, on every route of the scope that registers it. A Redis outage does not lock
 * everyone out of logging in (skipOnError). Also gives the scope `createRateLimit`.
 */
export default fp(
  async app => {
    const { loginConfig: config, loginMetrics: metrics } = app
    const store = app.redis === null ? undefined : nodeRedisRateLimitStore(app.redis.cmd, app.loginKeys.ipLimitPrefix)
    await app.register(rateLimit, {
      global: true,
      max: config.ipRateLimitMax,
      timeWindow: config.ipRateLimitWindowSeconds * 1000,
      // Only an address: the trusted hops decide it, and a client's string never becomes a key.
      keyGenerator: (request: FastifyRequest) =>
        `ip:${limitAddress(clientAddress(request.ip, request.socket.remoteAddress), config.ipv6Prefix)}`,
      skipOnError: true,
      ...(store !== undefined ? { store: store as unknown as RateLimitPluginOptions['store'] } : {}),
      errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) => {
        metrics.rateLimited.inc({ scope: 'ip' })
        return errors.ipRateLimited(Math.max(1, Math.ceil(context.ttl / 1000)))
      }
    })
    // The same check as the global hook (same store, key and counter), run by the route itself.
    const check = app.rateLimit()
    app.decorateRequest('ipLimit', null as unknown as Promise<void>)
    app.decorate('startIpLimit', async (request: FastifyRequest, reply: FastifyReply) => {
      await check.call(app, request, reply)
    })
  },
  { name: 'ip-limit', dependencies: ['stores'] }
)
