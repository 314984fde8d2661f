import fp from 'fastify-plugin'
import { openStoreRedis, RedisHandle } from '@wxlogin/service-kit'
import type { BrokerConfig } from '../config.js'
import { LocalLock, RedlockRefreshLock, type RefreshLock } from '../store/refresh-lock.js'
import { MemoryTokenStore } from '../store/memory-token-store.js'
import { RedisTokenStore, type TokenStore } from '../store/token-store.js'
import { BrokerKeys } from '../keys.js'

/** What the broker keeps warm, each with its own keys: the access_token and the two ticket types. */
export const CREDENTIAL_KINDS = ['token', 'ticket:jsapi', 'ticket:wx_card'] as const
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number]

function perKind<T> (make: (kind: CredentialKind) => T): Record<CredentialKind, T> {
  return { token: make('token'), 'ticket:jsapi': make('ticket:jsapi'), 'ticket:wx_card': make('ticket:wx_card') }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** One store per credential kind; `credentialStores.token` holds access_tokens. */
    credentialStores: Record<CredentialKind, TokenStore>
    refreshLock: RefreshLock
    /** The shared store's connection (null: memory); for what else the broker keeps there (pushes). */
    storeRedis: RedisHandle | null
    brokerKeys: BrokerKeys
    /** Readiness: how the shared store and the lock servers are doing. The broker serves either way. */
    storeHealth: () => { ok: true, degraded?: string }
  }
}

/** The shared token store and the Redlock quorum, or their single-replica stand-ins. */
export default fp<{ config: BrokerConfig }>(
  async (app, { config }) => {
    const store = openStoreRedis(
      app,
      config.redis,
      'No Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): tokens live in this process only; ' +
        'run a single replica'
    )
    app.decorate('storeRedis', store)
    app.decorate('brokerKeys', new BrokerKeys(config.redisKeyPrefix))
    if (store === null) {
      app.decorate(
        'credentialStores',
        perKind(() => new MemoryTokenStore())
      )
      app.decorate('refreshLock', new LocalLock())
      app.decorate('storeHealth', () => ({ ok: true as const }))
      return
    }
    // The first lock server is usually the store itself (always, in Sentinel and Cluster mode
    // without REDLOCK_URLS): reuse that connection.
    const lockServers = config.redlock.map((conn, i) =>
      conn === config.redis || (conn.url !== undefined && conn.url === config.redis?.url)
        ? store
        : new RedisHandle(conn, app.log, `lock-${i}`).start()
    )
    const ownLockServers = lockServers.filter(c => c !== store)

    const keys = app.brokerKeys
    const stores = perKind(
      kind =>
        new RedisTokenStore(
          store,
          keys,
          config.apps.map(a => a.appid),
          kind
        )
    )
    for (const s of Object.values(stores)) await s.start()
    app.decorate('credentialStores', stores)
    app.decorate('refreshLock', new RedlockRefreshLock(lockServers, keys, config.lockTtlMs))
    // Without Redis the broker still serves: cached tokens from memory, misses through the
    // in-process single flight. Readiness stays 200 and names the degradation.
    app.decorate('storeHealth', () => {
      const problem = store.problem()
      if (problem !== undefined) return { ok: true as const, degraded: `${problem}; serving tokens from memory` }
      const up = lockServers.filter(c => c.ok()).length
      if (up < Math.floor(lockServers.length / 2) + 1) {
        return {
          ok: true as const,
          degraded: `only ${up} of ${lockServers.length} lock servers reachable; refreshing without the cluster lock`
        }
      }
      return { ok: true as const }
    })
    app.addHook('onClose', async () => {
      await Promise.all(
        ownLockServers.map(async c => {
          await c.close()
        })
      )
    })
  },
  { name: 'token-store' }
)
