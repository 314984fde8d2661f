import fp from 'fastify-plugin'
import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import { clientAddress, limitAddress } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import { nodeRedisRateLimitStore } from '../rate-limit-store.js'

/**
 * Per client IP, on every route of the scope that registers it. A Redis outage does not lock
 * everyone out of logging in (skipOnError). Also gives the scope `createRateLimit`.
 */
export default fp(async (app) => {
  const { loginConfig: config, loginMetrics: metrics } = app
  const store = app.redis === null ? undefined : nodeRedisRateLimitStore(app.redis.cmd, `${config.redisKeyPrefix}ratelimit:`)
  await app.register(rateLimit, {
    global: true,
    max: config.ipRateLimitMax,
    timeWindow: config.ipRateLimitWindowSeconds * 1000,
    // Only an address: the trusted hops decide it, and a client's string never becomes a key.
    keyGenerator: (request: FastifyRequest) => `ip:${limitAddress(clientAddress(request.ip, request.socket.remoteAddress), config.ipv6Prefix)}`,
    skipOnError: true,
    ...(store !== undefined ? { store: store as unknown as RateLimitPluginOptions['store'] } : {}),
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) => {
      metrics.rateLimited.inc({ scope: 'ip' })
      return errors.ipRateLimited(Math.max(1, Math.ceil(context.ttl / 1000)))
    }
  })
}, { name: 'ip-limit', dependencies: ['stores'] })
