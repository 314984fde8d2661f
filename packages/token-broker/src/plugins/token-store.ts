import fp from 'fastify-plugin'
import { closeRedis, connectInBackground, createRedis, RedisHealth, type RedisClient } from '@wxlogin/service-kit'
import type { BrokerConfig } from '../config.js'
import { LocalLock, RedlockRefreshLock, type RefreshLock } from '../refresh-lock.js'
import { MemoryTokenStore, RedisTokenStore, type TokenStore } from '../token-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokenStore: TokenStore
    refreshLock: RefreshLock
    /** Readiness: how the shared store and the lock servers are doing. The broker serves either way. */
    storeHealth: () => { ok: true, degraded?: string }
  }
}

/** The shared token store and the Redlock quorum, or their single-replica stand-ins. */
export default fp<{ config: BrokerConfig }>(async (app, { config }) => {
  if (config.redis === undefined) {
    app.log.warn('REDIS_URL is unset: tokens live in this process only; run a single replica')
    app.decorate('tokenStore', new MemoryTokenStore())
    app.decorate('refreshLock', new LocalLock())
    app.decorate('storeHealth', () => ({ ok: true as const }))
    return
  }
  const client = createRedis(config.redis, app.log, 'store')
  const subscriber = client.duplicate()
  subscriber.on('error', () => { /* the store client reports the outage */ })
  // The first lock server is usually the store itself: reuse that connection.
  const lockClients: RedisClient[] = config.redlock.map((conn, i) =>
    conn.url === config.redis?.url ? client : createRedis(conn, app.log, `lock-${i}`))
  const owned = [client, subscriber, ...lockClients.filter(c => c !== client)]
  for (const c of owned) connectInBackground(c)
  const health = new RedisHealth(client, app.log).start()

  const store = new RedisTokenStore(client, subscriber, config.redisKeyPrefix, () => health.ok())
  await store.start()
  app.decorate('tokenStore', store)
  app.decorate('refreshLock', new RedlockRefreshLock(lockClients, config.redisKeyPrefix, config.lockTtlMs))
  // Without Redis the broker still serves: cached tokens from memory, misses through the
  // in-process single flight. Readiness stays 200 and names the degradation.
  app.decorate('storeHealth', () => {
    const problem = health.problem()
    if (problem !== undefined) return { ok: true as const, degraded: `redis ${problem}; serving tokens from memory` }
    const up = lockClients.filter(c => c.isReady).length
    if (up < Math.floor(lockClients.length / 2) + 1) return { ok: true as const, degraded: `only ${up} of ${lockClients.length} lock servers reachable; refreshing without the cluster lock` }
    return { ok: true as const }
  })
  app.addHook('onClose', async () => {
    health.stop()
    await Promise.all(owned.map(closeRedis))
  })
}, { name: 'token-store' })
