import { ConfigError, EnvReader, type Env } from '@wxlogin/service-kit'

export interface LoginConfig {
  host: string
  port: number
  metricsPort: number
  logLevel: string
  redisUrl: string | undefined
  redisKeyPrefix: string
  brokerUrl: string
  brokerToken: string
  brokerTimeoutMs: number
  appid: string
  wechatBaseUrl: string
  wechatTimeoutMs: number
  phoneRateLimitMax: number
  phoneRateLimitWindowSeconds: number
  ipRateLimitMax: number
  ipRateLimitWindowSeconds: number
  sessionTtlSeconds: number
  /** As fastify takes it: false, true, a hop count, or a list of proxy addresses. */
  trustProxy: boolean | number | string
}

function trustProxy (r: EnvReader): boolean | number | string {
  const raw = r.optionalString('TRUST_PROXY')
  if (raw === undefined) return false
  if (/^\d+$/.test(raw)) return Number(raw)
  if (/^(true|false|1|0|yes|no|on|off)$/i.test(raw)) return r.bool('TRUST_PROXY', false)
  if (/^[0-9a-fA-F.:/, ]+$/.test(raw)) return raw
  throw new ConfigError('TRUST_PROXY', 'must be true, false, a hop count, or a comma-separated list of proxy addresses')
}

export function loadConfig (env: Env): LoginConfig {
  const r = new EnvReader(env)
  const appid = r.string('WECHAT_APPID')
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(appid)) throw new ConfigError('WECHAT_APPID', 'is not a valid appid')
  const brokerToken = r.secret('BROKER_TOKEN', true)
  return {
    host: r.string('HOST', '0.0.0.0'),
    port: r.port('PORT', 3000),
    metricsPort: r.port('METRICS_PORT', 9464),
    logLevel: r.level('LOG_LEVEL'),
    redisUrl: r.optionalUrl('REDIS_URL', ['redis:', 'rediss:']),
    redisKeyPrefix: r.string('REDIS_KEY_PREFIX', 'wxlogin:'),
    brokerUrl: r.url('BROKER_URL'),
    brokerToken,
    brokerTimeoutMs: r.int('BROKER_TIMEOUT_MS', 3000, { min: 100, max: 60_000 }),
    appid,
    wechatBaseUrl: r.url('WECHAT_API_BASE_URL', 'https://api.weixin.qq.com'),
    wechatTimeoutMs: r.int('WECHAT_TIMEOUT_MS', 5000, { min: 100, max: 60_000 }),
    phoneRateLimitMax: r.int('PHONE_RATE_LIMIT_MAX', 5, { min: 1 }),
    phoneRateLimitWindowSeconds: r.int('PHONE_RATE_LIMIT_WINDOW_SECONDS', 60, { min: 1 }),
    ipRateLimitMax: r.int('IP_RATE_LIMIT_MAX', 60, { min: 1 }),
    ipRateLimitWindowSeconds: r.int('IP_RATE_LIMIT_WINDOW_SECONDS', 60, { min: 1 }),
    sessionTtlSeconds: r.int('SESSION_TTL_SECONDS', 604800, { min: 60 }),
    trustProxy: trustProxy(r)
  }
}
