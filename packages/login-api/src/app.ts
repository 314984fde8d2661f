import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import formbody from '@fastify/formbody'
import swagger from '@fastify/swagger'
import gotDefault, { type Got } from 'got'
import type { Registry } from 'prom-client'
import { createRegistry, httpMetrics, installErrorHandling, loggerOptions, registerHealthRoutes, shedWhileClosing } from '@wxlogin/service-kit'
import type { LoginConfig } from './config.js'
import { createLoginMetrics } from './metrics.js'
import stores from './plugins/stores.js'
import upstreams from './plugins/upstreams.js'
import apiRoutes from './routes/api.js'

export { loadConfig } from './config.js'
export type { LoginConfig } from './config.js'

declare module 'fastify' {
  interface FastifyInstance {
    registry: Registry
  }
}

export interface BuildOptions {
  /** Used for the broker and WeChat; the default never retries (getuserphonenumber must not be). */
  got?: Got
  logger?: FastifyServerOptions['logger']
}

export async function buildApp (config: LoginConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const options: FastifyServerOptions = {
    logger: opts.logger ?? loggerOptions(config.logLevel, 'login-api'),
    // fastify takes a hop count too, though its type does not say so.
    trustProxy: config.trustProxy as boolean | string,
    bodyLimit: 16 * 1024,
    requestTimeout: 30_000,
    // shedWhileClosing answers during the drain, in the contract's error shape.
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } }
  }
  const app = Fastify(options)
  const registry = createRegistry()
  const metrics = createLoginMetrics(registry)
  const got = opts.got ?? gotDefault.extend({ retry: { limit: 0 } })

  app.decorate('registry', registry)
  installErrorHandling(app)
  shedWhileClosing(app)
  await app.register(httpMetrics, { registry })
  // Describes the routes for docs/openapi (scripts/openapi.mjs); never served on the public port.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'login-api', version: '1.0.0', description: 'The API the WeChat mini-program calls: login with code and phoneCode, sessions.' },
      components: { securitySchemes: { session: { type: 'http', scheme: 'bearer', description: 'The token thirdLogin returned' } } }
    }
  })
  await app.register(formbody, { bodyLimit: 16 * 1024 })
  // JSON (and forms) only: a text/plain body is a client mistake, answered 415.
  app.removeContentTypeParser('text/plain')
  await app.register(stores, { config })
  await app.register(upstreams, { config, got, metrics })
  await app.register(apiRoutes, { prefix: '/api', config, metrics })
  registerHealthRoutes(app, {
    redis: async () => app.redis === null || app.redis.isReady ? { ok: true } : { ok: false, reason: 'redis unreachable' },
    broker: async () => await app.broker.ping() ? { ok: true } : { ok: false, reason: 'token broker unreachable' }
  })
  return app
}
