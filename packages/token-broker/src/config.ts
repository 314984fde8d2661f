import { readPushConfig, type PushConfig } from './push/push-config.js'
import { parseClients, type BrokerClientConfig } from './clients/client-config.js'

export type { BrokerClientConfig } from './clients/client-config.js'
import {
  APPID,
  ConfigError,
  EnvReader,
  readAppList,
  readAccessLog,
  type AccessLogOptions,
  readHttpLimits,
  type HttpLimits,
  readRedisConnection,
  redisUrlList,
  upstreamUrl,
  type Env,
  type RedisConnection
} from '@wxlogin/service-kit'

export type TokenMode = 'stable' | 'classic'

export interface WechatAppConfig {
  appid: string
  secret: string
  tokenMode: TokenMode
}

export interface BrokerConfig {
  host: string
  port: number
  metricsPort: number
  logLevel: string
  /** Unset: tokens live in process memory only (one replica). */
  redis: RedisConnection | undefined
  /** The Redlock quorum (same credentials and timeouts as `redis`); defaults to [redis]. */
  redlock: RedisConnection[]
  redisKeyPrefix: string
  apps: WechatAppConfig[]
  clients: BrokerClientConfig[]
  wechatBaseUrl: string
  refreshAheadSeconds: number
  /**
   * How long a refresh lock outlives a holder that died. The holder extends it while its
   * refresh runs, so it need not cover the slowest upstream call.
   */
  lockTtlMs: number
  /** One upstream attempt's timeout, and the whole retry loop's budget. */
  upstreamTimeoutMs: number
  retryBudgetMs: number
  /** A failed refresh is answered from memory for this long, so a wrong secret cannot hammer WeChat. */
  failureMemoryMs: number
  /** Least time between two refreshes caused by invalidations of one app, cluster-wide. */
  forceRefreshIntervalMs: number
  /**
   * A WeChat-shaped force_refresh (an SDK's reaction to 40001) refreshes only when the current
   * token is older than this; a younger one is the answer.
   */
  forceRefreshGraceMs: number
  /** Least time between two checks of an app's token with WeChat, cluster-wide. */
  verifyFloorMs: number
  /** The same token asked for again by the same caller within this: it may be dead, check it. */
  reaskWindowMs: number
  /**
   * Refreshes caused by invalidations, per app and day (WeChat's day, UTC+8), cluster-wide. WeChat
   * allows 20 forced stable_token refreshes and about 2,000 /cgi-bin/token calls a day; the rest
   * is left for the schedule and for a human.
   */
  invalidationBudget: { stable: number, classic: number }
  /**
   * PHONE_USAGE_POLL_SECONDS (0: off) and PHONE_USAGE_SPU_IDS: the paid phone components' quota,
   * polled from WeChat into gauges (docs/phone-billing.md). Off without spu ids.
   */
  phoneUsage?: { pollMs: number, spuIds: string[] }
  /** WECHAT_EGRESS_PROXY: the forward proxy every request to WeChat goes through (may hold credentials). */
  egressProxy?: string
  /** WeChat's message push (PUSH_PORT) and its delivery to clients (docs/wechat-push.md). */
  push?: PushConfig
  /** LOG_ACCESS_SAMPLE_RATE, LOG_SLOW_REQUEST_MS; errors are always logged. */
  accessLog?: AccessLogOptions
  /** REQUEST_TIMEOUT_SECONDS: how long a client may take to send a request. */
  http?: HttpLimits
}

function tokenMode (name: string, value: unknown): TokenMode {
  if (value === 'stable' || value === 'classic') return value
  throw new ConfigError(name, 'must be "stable" or "classic"')
}

function parseApps (r: EnvReader, defaultMode: TokenMode): WechatAppConfig[] {
  const apps = readAppList(r, 'WECHAT_APPS', 'several apps')
  if ('single' in apps) return [{ appid: apps.single, secret: r.secret('WECHAT_SECRET', true), tokenMode: defaultMode }]
  const { list } = apps
  const seen = new Set<string>()
  return list.map((item: unknown, i) => {
    const o = item as Record<string, unknown> | null
    if (typeof o?.appid !== 'string' || !APPID.test(o.appid)) {
      throw new ConfigError('WECHAT_APPS', `entry ${i} has no valid "appid"`)
    }
    if (typeof o.secret !== 'string' || o.secret === '') {
      throw new ConfigError('WECHAT_APPS', `entry ${i} has no "secret"`)
    }
    if (seen.has(o.appid)) throw new ConfigError('WECHAT_APPS', `lists appid ${o.appid} twice`)
    seen.add(o.appid)
    return {
      appid: o.appid,
      secret: o.secret,
      tokenMode: o.token_mode === undefined ? defaultMode : tokenMode('WECHAT_APPS', o.token_mode)
    }
  })
}

/** One number for every app when set; else half of what WeChat allows each mode. */
function invalidationBudget (r: EnvReader, apps: WechatAppConfig[]): BrokerConfig['invalidationBudget'] {
  const name = 'TOKEN_INVALIDATION_DAILY_BUDGET'
  if (r.optionalString(name) === undefined) return { stable: 10, classic: 1000 }
  const n = r.int(name, 0, { min: 0, max: 2000 })
  if (n > 20 && apps.some(a => a.tokenMode === 'stable')) {
    throw new ConfigError(name, 'is above 20, and WeChat allows stable-mode apps only 20 forced refreshes a day')
  }
  return { stable: n, classic: n }
}

export function loadConfig (env: Env): BrokerConfig {
  const r = new EnvReader(env)
  const redis = readRedisConnection(r)
  const defaultMode = tokenMode('WECHAT_TOKEN_MODE', r.string('WECHAT_TOKEN_MODE', 'stable'))
  const apps = parseApps(r, defaultMode)
  const clients = parseClients(r)
  const redlockUrls = redisUrlList(r, 'REDLOCK_URLS')
  if (redlockUrls !== undefined && redis === undefined) {
    throw new ConfigError(
      'REDLOCK_URLS',
      'needs a Redis store as well (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): the lock guards a shared ' +
        'token store'
    )
  }
  // Unset: one lock on the store itself (in a Cluster, on the app's own slot).
  const redlock =
    redis === undefined
      ? []
      : redlockUrls === undefined
        ? [redis]
        : redlockUrls.map(url => ({
          ...redis,
          url,
          sentinels: undefined,
          sentinelMaster: undefined,
          clusterNodes: undefined
        }))
  const budget = invalidationBudget(r, apps)
  const upstreamTimeoutMs = r.int('WECHAT_TIMEOUT_MS', 5000, { min: 100, max: 60_000 })
  return {
    host: r.string('HOST', '0.0.0.0'),
    port: r.port('PORT', 3001),
    metricsPort: r.port('METRICS_PORT', 9465),
    logLevel: r.level('LOG_LEVEL'),
    redis,
    redlock,
    redisKeyPrefix: r.string('REDIS_KEY_PREFIX', 'wxbroker:'),
    apps,
    clients,
    // The token and code2session calls carry the appsecret.
    wechatBaseUrl: upstreamUrl(r, 'WECHAT_API_BASE_URL', 'https://api.weixin.qq.com', 'WECHAT_API_ALLOW_HTTP'),
    refreshAheadSeconds: r.int('TOKEN_REFRESH_AHEAD_SECONDS', 300, { min: 0, max: 3600 }),
    lockTtlMs: r.int('TOKEN_LOCK_TTL_MS', 3000, { min: 500, max: 300_000 }),
    upstreamTimeoutMs,
    retryBudgetMs: r.int('WECHAT_RETRY_BUDGET_MS', 8000, { min: 0, max: 120_000 }),
    failureMemoryMs: r.int('TOKEN_FAILURE_MEMORY_SECONDS', 5, { min: 0, max: 3600 }) * 1000,
    forceRefreshIntervalMs: r.int('TOKEN_FORCE_REFRESH_MIN_INTERVAL_SECONDS', 60, { min: 0, max: 86_400 }) * 1000,
    forceRefreshGraceMs: r.int('TOKEN_FORCE_REFRESH_GRACE_SECONDS', 60, { min: 0, max: 3600 }) * 1000,
    verifyFloorMs: r.int('TOKEN_VERIFY_MIN_INTERVAL_SECONDS', 1, { min: 1, max: 3600 }) * 1000,
    reaskWindowMs: r.int('TOKEN_REASK_WINDOW_SECONDS', 60, { min: 1, max: 3600 }) * 1000,
    invalidationBudget: budget,
    phoneUsage: readPhoneUsage(r),
    push: readPushConfig(r, apps.map(a => a.appid)),
    egressProxy: readEgressProxy(r),
    accessLog: readAccessLog(r),
    http: readHttpLimits(r)
  }
}

function readPhoneUsage (r: EnvReader): BrokerConfig['phoneUsage'] {
  const pollSeconds = r.int('PHONE_USAGE_POLL_SECONDS', 600, { min: 0, max: 86_400 })
  const spuIds = r
    .string('PHONE_USAGE_SPU_IDS', '')
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '')
  for (const id of spuIds) {
    if (!/^\d{1,20}$/.test(id)) throw new ConfigError('PHONE_USAGE_SPU_IDS', `holds "${id}", not a spu id (digits)`)
  }
  if (pollSeconds === 0 || spuIds.length === 0) return undefined
  // At least a minute: WeChat's usage figures move no faster, and each poll is a call per app and spu.
  if (pollSeconds < 60) throw new ConfigError('PHONE_USAGE_POLL_SECONDS', 'must be 0 (off) or at least 60')
  return { pollMs: pollSeconds * 1000, spuIds }
}

/** http://[user:password@]host:port; the messages never quote it (it may hold a password). */
function readEgressProxy (r: EnvReader): string | undefined {
  const value = r.secret('WECHAT_EGRESS_PROXY')
  if (value === undefined || value === '') return undefined
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError('WECHAT_EGRESS_PROXY', 'is not a URL (http://[user:password@]host:port)')
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.pathname.length > 1) {
    throw new ConfigError('WECHAT_EGRESS_PROXY', 'must be http://[user:password@]host:port (or https://)')
  }
  return value
}
