import fp from 'fastify-plugin'
import type { Counter, Gauge } from 'prom-client'
import type { BrokerConfig } from '../config.js'
import { MemoryEventStore, type WechatEventStore } from '../push/event-store.js'
import { RedisEventStore } from '../push/redis-event-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** WeChat's pushes, stored once and delivered to each client at least once. */
    wechatEvents: WechatEventStore
    /** token_broker_push_messages_total, for the push listener (buildPushListener). */
    pushMetrics: Counter<'appid' | 'result'>
    /** wechat_charge_quota_used and _total: the usage poll and charge_service_quota_notify set them. */
    quotaGauges: { used: Gauge<'appid' | 'spu'>, total: Gauge<'appid' | 'spu'> }
  }
}

const DEFAULTS = { visibilityMs: 60_000, retentionMs: 604_800_000 }

/** The pushes live beside the tokens: the broker's Redis, or this process without one. */
export default fp<{ config: BrokerConfig }>(
  async (app, { config }) => {
    const { visibilityMs, retentionMs } = config.push ?? DEFAULTS
    const redis = app.storeRedis
    const events: WechatEventStore =
      redis === null
        ? new MemoryEventStore(visibilityMs, retentionMs)
        : new RedisEventStore(redis, app.brokerKeys, visibilityMs, retentionMs)
    app.decorate('wechatEvents', events)
  },
  { name: 'wechat-events', dependencies: ['token-store'] }
)
