import fp from 'fastify-plugin'
import type { LoginConfig } from '../config.js'
import { createLoginMetrics, type LoginMetrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    loginConfig: LoginConfig
    loginMetrics: LoginMetrics
  }
}

/** The configuration and this app's metrics, as decorators like every other dependency. */
export default fp<{ config: LoginConfig }>(async (app, { config }) => {
  app.decorate('loginConfig', config)
  app.decorate('loginMetrics', createLoginMetrics(app.registry))
}, { name: 'login-context' })
