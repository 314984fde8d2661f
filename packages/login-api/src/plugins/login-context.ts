import fp from 'fastify-plugin'
import type { LoginConfig } from '../config.js'
import { LoginKeys } from '../keys.js'
import { createLoginMetrics, type LoginMetrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    loginConfig: LoginConfig
    loginMetrics: LoginMetrics
    /** Every Redis key name (REDIS_KEY_PREFIX), built in keys.ts. */
    loginKeys: LoginKeys
  }
}

/** The configuration, this app's metrics and its key names, as decorators like every other dependency. */
export default fp<{ config: LoginConfig }>(
  async (app, { config }) => {
    app.decorate('loginConfig', config)
    app.decorate('loginMetrics', createLoginMetrics(app.registry))
    app.decorate('loginKeys', new LoginKeys(config.redisKeyPrefix))
  },
  { name: 'login-context' }
)
