import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import formbody from '@fastify/formbody'
import swagger from '@fastify/swagger'
import {
  BODY_LIMIT,
  createServiceApp,
  registerHealthRoutes,
  type ReadyCheck,
  type Tracing
} from '@wxlogin/service-kit'
import type { LoginConfig } from './config.js'
import loginContext from './plugins/login-context.js'
import database from './plugins/database.js'
import stores from './plugins/stores.js'
import upstreams from './plugins/upstreams.js'
import wechatEvents from './plugins/wechat-events.js'
import apiRoutes from './routes/api.js'
import { jwksRoute } from './routes/tokens.js'

export { loadConfig, worstCaseLoginMs } from './config.js'
export type { LoginConfig } from './config.js'

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  /** OpenTelemetry, when server.ts started it (startTracing); absent: no tracing. */
  tracing?: Tracing | null
}

export async function buildApp (config: LoginConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = await createServiceApp({
    name: 'login-api',
    logLevel: config.logLevel,
    logger: opts.logger,
    trustProxy: config.trustProxy,
    accessLog: config.accessLog,
    http: config.http,
    tracing: opts.tracing
  })

  // Describes the routes for docs/openapi (scripts/openapi.mjs); never served on the public port.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'login-api',
        version: '1.0.0',
        description: 'The API the WeChat mini-program calls: login with code and phoneCode, sessions.'
      },
      components: {
        securitySchemes: { session: { type: 'http', scheme: 'bearer', description: 'The token thirdLogin returned' } }
      }
    }
  })
  await app.register(formbody, { bodyLimit: BODY_LIMIT })
  await app.register(loginContext, { config })
  await app.register(database)
  await app.register(stores)
  await app.register(upstreams)
  await app.register(wechatEvents)
  await app.register(apiRoutes, { prefix: '/api' })
  const signed = app.signedSessions
  if (signed !== null) await jwksRoute(app, signed)
  registerHealthRoutes(app, {
    redis: problemCheck(() => app.redis?.problem()),
    ...(app.database === null ? {} : { database: problemCheck(() => app.database?.problem()) }),
    broker: async () => ((await app.broker.ping()) ? { ok: true } : { ok: false, reason: 'token broker unreachable' })
  })
  return app
}

/** A store's readiness from what it says is wrong (undefined: nothing). */
function problemCheck (problem: () => string | undefined): ReadyCheck {
  return async () => {
    const reason = problem()
    return reason === undefined ? { ok: true } : { ok: false, reason }
  }
}
