import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { createWechatApiMetrics, type WechatApiMetrics } from '@wxlogin/service-kit'

export type TokenSource = 'memory' | 'redis' | 'upstream'
export type RefreshReason = 'miss' | 'ahead' | 'invalidated'

export interface BrokerMetrics {
  wechat: WechatApiMetrics
  tokenRequests: Counter<'appid' | 'source'>
  refreshes: Counter<'appid' | 'reason' | 'result'>
  expiry: Gauge<'appid'>
  lockWait: Histogram
  budgetUsed: Gauge<'appid'>
  budgetLimit: Gauge<'appid'>
}

export function createBrokerMetrics (registry: Registry): BrokerMetrics {
  return {
    wechat: createWechatApiMetrics(registry),
    tokenRequests: new Counter({
      name: 'token_broker_token_requests_total',
      help: 'access_tokens served, by where they came from.',
      labelNames: ['appid', 'source'] as const,
      registers: [registry]
    }),
    refreshes: new Counter({
      name: 'token_broker_refreshes_total',
      help: 'Upstream token refreshes this replica made, by reason and result.',
      labelNames: ['appid', 'reason', 'result'] as const,
      registers: [registry]
    }),
    expiry: new Gauge({
      name: 'token_broker_token_expiry_timestamp_seconds',
      help: 'When the access_token this replica holds expires (Unix seconds).',
      labelNames: ['appid'] as const,
      registers: [registry]
    }),
    lockWait: new Histogram({
      name: 'token_broker_lock_wait_seconds',
      help: 'Time a refresh waited for the cluster-wide lock or for another replica\'s token.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry]
    }),
    budgetUsed: new Gauge({
      name: 'token_broker_invalidation_budget_used',
      help: 'Refreshes caused by invalidations today (WeChat\'s day, UTC+8), cluster-wide, as this replica last counted them.',
      labelNames: ['appid'] as const,
      registers: [registry]
    }),
    budgetLimit: new Gauge({
      name: 'token_broker_invalidation_budget_limit',
      help: 'Refreshes caused by invalidations allowed per app and day (TOKEN_INVALIDATION_DAILY_BUDGET).',
      labelNames: ['appid'] as const,
      registers: [registry]
    })
  }
}
