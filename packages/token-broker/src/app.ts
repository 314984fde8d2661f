import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import swagger from '@fastify/swagger'
import type { Got } from 'got'
import { createServiceApp, createUpstreamGot, registerHealthRoutes, type Tracing } from '@wxlogin/service-kit'
import type { BrokerConfig } from './config.js'
import { createBrokerMetrics } from './metrics.js'
import tokenStore from './plugins/token-store.js'
import tokens from './plugins/tokens.js'
import tokenChecks from './plugins/token-checks.js'
import clientAuth from './plugins/client-auth.js'
import keptAnswers from './plugins/kept-answers.js'
import phoneUsage from './plugins/phone-usage.js'
import phoneRoutes from './routes/phone.js'
import riskRoutes from './routes/risk.js'
import wechatEvents from './plugins/wechat-events.js'
import wechatEventRoutes from './routes/wechat-events.js'
import gatewayRoutes from './routes/gateway.js'
import wechatGatewayRoutes from './routes/wechat-gateway.js'
import { Gateway } from './gateway/forward.js'
import { GatewayLimits } from './gateway/limits.js'
import { SurrogateTokens } from './gateway/surrogates.js'
import { TokenCallers } from './gateway/callers.js'
import { throughEgressProxy } from './wechat/egress.js'
import v1Routes from './routes/v1.js'
import ticketRoutes from './routes/tickets.js'
import quotaRoutes from './routes/quota.js'
import wechatCompatRoutes from './routes/wechat-compat.js'
import wechatTicketRoutes from './routes/wechat-ticket.js'

export { loadConfig } from './config.js'
export type { BrokerConfig, WechatAppConfig, BrokerClientConfig, TokenMode } from './config.js'

const OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'token-broker',
    version: '1.0.0',
    description:
      'Internal API: WeChat access_tokens, code2session and phone numbers for authenticated internal callers.'
  },
  components: {
    securitySchemes: {
      bearer: { type: 'http' as const, scheme: 'bearer', description: 'A client token from BROKER_CLIENTS' }
    }
  }
}

export interface BuildOptions {
  /**
   * The gateway's got (it streams WeChat's answers): tests pass their own (retries off, say);
   * production gets one without got's retries (ours apply). JSON calls go on Node's client.
   */
  got?: Got
  logger?: FastifyServerOptions['logger']
  /** OpenTelemetry, when server.ts started it (startTracing); absent: no tracing. */
  tracing?: Tracing | null
  /** First retry pause against WeChat; tests make it tiny. */
  backoffBaseMs?: number
}

export async function buildApp (config: BrokerConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = await createServiceApp({
    name: 'token-broker',
    logLevel: config.logLevel,
    logger: opts.logger,
    accessLog: config.accessLog,
    http: config.http,
    tracing: opts.tracing
  })
  const metrics = createBrokerMetrics(app.registry)
  app.decorate('pushMetrics', metrics.pushMessages)
  app.decorate('quotaGauges', { used: metrics.chargeUsed, total: metrics.chargeTotal })
  // Every request to WeChat, through the egress proxy when one is set.
  const egress = throughEgressProxy(opts.got ?? createUpstreamGot(), config.egressProxy)
  const got = egress.got
  app.addHook('onClose', async () => {
    egress.close()
  })

  await app.register(swagger, { openapi: OPENAPI })
  await app.register(tokenStore, { config })
  await app.register(tokens, { config, upstream: egress.upstream, metrics, backoffBaseMs: opts.backoffBaseMs })
  await app.register(tokenChecks, { config, metrics })
  await app.register(keptAnswers, { config })
  await app.register(wechatEvents, { config })
  await app.register(phoneUsage, { config, metrics })
  await app.register(clientAuth, { clients: config.clients, metrics })
  await app.register(v1Routes, { prefix: '/v1' })
  await app.register(phoneRoutes, { prefix: '/v1', metrics })
  await app.register(riskRoutes, { prefix: '/v1' })
  await app.register(wechatEventRoutes, { prefix: '/v1' })
  const gateway = new Gateway({
    got,
    wechatBaseUrl: config.wechatBaseUrl,
    timeoutMs: config.upstreamTimeoutMs,
    metrics,
    tokens: app.tokens,
    limits: new GatewayLimits()
  })
  const surrogates = new SurrogateTokens(config.apps, config.clients)
  const callers = new TokenCallers(app.tokens, config.apps.map(a => a.appid), surrogates)
  await app.register(gatewayRoutes, { prefix: '/v1', gateway, metrics })
  await app.register(ticketRoutes, { prefix: '/v1' })
  await app.register(quotaRoutes, { prefix: '/v1', metrics })
  await app.register(wechatCompatRoutes, {
    prefix: '/cgi-bin',
    forceRefreshGraceMs: config.forceRefreshGraceMs,
    surrogates
  })
  await app.register(wechatTicketRoutes, { prefix: '/cgi-bin', callers })
  await app.register(wechatGatewayRoutes, { gateway, callers, clients: config.clients, metrics })
  registerHealthRoutes(app, {
    redis: async () => app.storeHealth()
  })
  // The broker's port is internal, so its API description is served there.
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  return app
}

/**
 * The listener WeChat pushes to (PUSH_PORT), built on `app`'s store and metrics; null when no
 * PUSH_PORT is set. It serves nothing but /wechat/push/{appid}: server.ts listens on it.
 */
export async function buildPushListener (app: FastifyInstance, config: BrokerConfig): Promise<FastifyInstance | null> {
  if (config.push?.port === undefined) return null
  // Loaded only with a PUSH_PORT: the XML parser and the push crypto are memory a broker
  // without pushes does not pay.
  const { buildPushServer } = await import('./push/push-server.js')
  return buildPushServer({
    push: config.push,
    store: app.wechatEvents,
    metrics: app.pushMetrics,
    quota: app.quotaGauges,
    log: app.log
  })
}
