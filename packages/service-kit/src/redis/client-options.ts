import type { createClient, createCluster, createSentinel } from 'redis'
import type { RedisConnection } from './connection.js'

/** Topology checks (PING, Sentinel scan, Cluster rediscovery) run this often. */
export const PROBE_INTERVAL_MS = 1000

export interface ClientOptions {
  single: Parameters<typeof createClient>[0]
  sentinel: Parameters<typeof createSentinel>[0]
  cluster: Parameters<typeof createCluster>[0]
}

/** node-redis options for each mode, from one connection description. */
export function clientOptions (conn: RedisConnection): ClientOptions {
  const socket = {
    connectTimeout: 2000,
    ...(conn.tls ? { tls: true as const } : {}),
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), 2000)
  }
  const credentials = { username: conn.username, password: conn.password }
  // Fail fast instead of queueing while disconnected: a queue turns an outage into hung requests.
  const nodeOptions = { ...credentials, disableOfflineQueue: true, socket }
  const url = conn.url
  const urlHasCredentials = url !== undefined && (new URL(url).username !== '' || new URL(url).password !== '')
  return {
    single: { url, ...(urlHasCredentials ? {} : credentials), disableOfflineQueue: true, socket },
    sentinel: {
      name: conn.sentinelMaster ?? 'mymaster',
      sentinelRootNodes: conn.sentinels ?? [],
      scanInterval: PROBE_INTERVAL_MS,
      // One master connection held for good. Without it, commands issued together while no
      // lease is held each ask the pool for one, and all but the first wait for its answer:
      // a login's pipelined commands (and a write's WAIT) went out one round trip apiece.
      reserveClient: true,
      nodeClientOptions: nodeOptions,
      sentinelClientOptions: { socket }
    },
    cluster: {
      rootNodes: (conn.clusterNodes ?? []).map(n => ({ socket: { host: n.host, port: n.port } })),
      defaults: nodeOptions
    }
  }
}
