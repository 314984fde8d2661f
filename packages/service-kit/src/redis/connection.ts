import { checkUrl, ConfigError, type EnvReader } from '../env.js'

export interface RedisNode {
  host: string
  port: number
}

/**
 * How to reach Redis: one server (`url`), a Sentinel-monitored master (`sentinels`), or a
 * Cluster (`clusterNodes`, seeds); credentials and TLS apply where a URL names none.
 */
export interface RedisConnection {
  url?: string | undefined
  sentinels?: RedisNode[] | undefined
  sentinelMaster?: string | undefined
  clusterNodes?: RedisNode[] | undefined
  username?: string | undefined
  password?: string | undefined
  tls: boolean
  /** Every command fails after this long: a frozen server must not hang requests. */
  commandTimeoutMs: number
  /** Replicas that must acknowledge a write that matters (users, sessions) before it counts. */
  waitReplicas?: number | undefined
}

export type RedisMode = 'single' | 'sentinel' | 'cluster'

export function redisMode (c: RedisConnection): RedisMode {
  if (c.sentinels !== undefined) return 'sentinel'
  if (c.clusterNodes !== undefined) return 'cluster'
  return 'single'
}

function nodeList (r: EnvReader, name: string): RedisNode[] | undefined {
  const raw = r.optionalString(name)
  if (raw === undefined) return undefined
  const nodes = raw
    .split(',')
    .map(s => s.trim())
    .filter(Boolean)
    .map(s => {
      const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(s)
      if (m === null || Number(m[2]) > 65535) throw new ConfigError(name, 'must be a comma-separated list of host:port')
      return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port: Number(m[2]) }
    })
  if (nodes.length === 0) throw new ConfigError(name, 'must name at least one host:port')
  return nodes
}

/**
 * REDIS_URL (or REDIS_URL_FILE), REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or
 * REDIS_CLUSTER_NODES: at most one. REDIS_USERNAME, REDIS_PASSWORD (or _FILE), REDIS_TLS,
 * REDIS_COMMAND_TIMEOUT_MS, REDIS_WAIT_REPLICAS. Undefined when no Redis is configured.
 */
export function readRedisConnection (r: EnvReader): RedisConnection | undefined {
  const url = r.secret('REDIS_URL')
  const sentinels = nodeList(r, 'REDIS_SENTINELS')
  const clusterNodes = nodeList(r, 'REDIS_CLUSTER_NODES')
  const set = [
    url !== undefined && 'REDIS_URL',
    sentinels !== undefined && 'REDIS_SENTINELS',
    clusterNodes !== undefined && 'REDIS_CLUSTER_NODES'
  ].filter(Boolean)
  if (set.length > 1) {
    throw new ConfigError(set.join(' and '), 'are both set; set one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES')
  }
  if (set.length === 0) {
    for (const name of ['REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_SENTINEL_MASTER', 'REDIS_WAIT_REPLICAS']) {
      if (r.has(name)) {
        throw new ConfigError(name, 'is set but no Redis is (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)')
      }
    }
    return undefined
  }
  if (sentinels === undefined && r.has('REDIS_SENTINEL_MASTER')) {
    throw new ConfigError('REDIS_SENTINEL_MASTER', 'needs REDIS_SENTINELS')
  }
  return {
    url: url === undefined ? undefined : checkUrl('REDIS_URL', url, ['redis:', 'rediss:']),
    sentinels,
    sentinelMaster: sentinels === undefined ? undefined : r.string('REDIS_SENTINEL_MASTER', 'mymaster'),
    clusterNodes,
    username: r.optionalString('REDIS_USERNAME'),
    password: r.secret('REDIS_PASSWORD'),
    tls: r.bool('REDIS_TLS', false),
    commandTimeoutMs: r.int('REDIS_COMMAND_TIMEOUT_MS', 1000, { min: 50, max: 60_000 }),
    // Where replicas exist, a login is answered only once one of them has it.
    waitReplicas: r.int('REDIS_WAIT_REPLICAS', url === undefined ? 1 : 0, { min: 0, max: 16 })
  }
}
