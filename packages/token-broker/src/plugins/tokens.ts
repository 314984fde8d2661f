import fp from 'fastify-plugin'
import type { Got } from 'got'
import type { BrokerConfig } from '../config.js'
import type { BrokerMetrics } from '../metrics.js'
import { TokenManager } from '../token-manager.js'
import { WechatClient } from '../wechat-client.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokens: TokenManager
    wechat: WechatClient
  }
}

export interface TokensPluginOptions {
  config: BrokerConfig
  got: Got
  metrics: BrokerMetrics
  backoffBaseMs?: number
}

export default fp<TokensPluginOptions>(async (app, { config, got, metrics, backoffBaseMs }) => {
  const wechat = new WechatClient({
    got,
    metrics: metrics.wechat,
    baseUrl: config.wechatBaseUrl,
    timeoutMs: config.upstreamTimeoutMs,
    retryBudgetMs: config.retryBudgetMs,
    ...(backoffBaseMs !== undefined ? { backoffBaseMs } : {})
  })
  const tokens = new TokenManager({
    apps: config.apps,
    store: app.tokenStore,
    lock: app.refreshLock,
    wechat,
    metrics,
    log: app.log,
    refreshAheadMs: config.refreshAheadSeconds * 1000,
    failureMemoryMs: config.failureMemoryMs,
    forceRefreshIntervalMs: config.forceRefreshIntervalMs,
    invalidationBudget: config.invalidationBudget,
    waitTimeoutMs: config.lockTtlMs + config.retryBudgetMs + config.upstreamTimeoutMs
  })
  app.decorate('wechat', wechat)
  app.decorate('tokens', tokens)
  // Before the store closes (onClose hooks run in reverse order of registration).
  app.addHook('onClose', async () => { await tokens.drain() })
}, { name: 'tokens', dependencies: ['token-store'] })
