import { parsePiiKeys, type PiiKey } from './users/pii.js'
import { parseSigningKeys, type SigningKey } from './sessions/jwt/signing-keys.js'
import { KEEP_PATIENCE_MS } from './exchanges/code-exchanges.js'
import { readDatabaseConfig, type DatabaseConfig } from './users/sql/database-config.js'
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
  readTrustProxy,
  type Env,
  type RedisConnection,
  type TrustProxy
} from '@wxlogin/service-kit'

export interface LoginConfig {
  host: string
  port: number
  metricsPort: number
  logLevel: string
  /** Unset: users, sessions and limits live in this process (one replica). */
  redis: RedisConnection | undefined
  redisKeyPrefix: string
  /** DATABASE_URL: users in PostgreSQL or MySQL; unset, they live with the rest (Redis or memory). */
  database?: DatabaseConfig | undefined
  brokerUrl: string
  brokerToken: string
  /** BROKER_ALLOW_HTTP: plain http to a broker on another host is intended (no warning). */
  brokerAllowHttp: boolean
  /** Per broker request; the broker is told what is left of it and gives up first. */
  brokerTimeoutMs: number
  /** The mini-programs this login-api serves (LOGIN_APPS, or WECHAT_APPID alone). */
  apps: string[]
  phoneRateLimitMax: number
  phoneRateLimitWindowSeconds: number
  ipRateLimitMax: number
  ipRateLimitWindowSeconds: number
  /** IPv6 clients are limited by their network of this many bits (one subscriber's /64). */
  ipv6Prefix: number
  /** Failing code exchanges per app and window, past which IPs that fail are shed before WeChat. */
  codeFailures: { budget: number, windowSeconds: number, perIp: number }
  sessionTtlSeconds: number
  /** Sessions one user may hold at once; a new login ends the oldest beyond it. */
  sessionsPerUserMax: number
  /** Login events on the Redis Stream (keys.ts `events`), capped near this length. */
  eventsMaxLen: number
  /** Full phone numbers in events; otherwise masked. */
  eventsIncludePhone: boolean
  /**
   * A login code first used without a retry_key may be retried without one (the behaviour for
   * clients older than retry_key). Off: such a code, once used, is answered invalid_code.
   */
  retryWithoutKey: boolean
  /**
   * WECHAT_EVENTS_RECEIVE: receive WeChat's pushes from the broker (this service's client needs
   * `events` there) and honour withdrawals and cancellations (docs/wechat-push.md).
   */
  wechatEventsReceive: boolean
  /**
   * LOGIN_RISK_POLICY and LOGIN_RISK_MAX_RANK: a login that would create a user asks WeChat's
   * getUserRiskRank (scene 0) through the broker. `observe` counts; `enforce` refuses a rank above
   * `maxRank` (403 high_risk_user, no user created). Off by default; returning users are never asked.
   */
  risk: { policy: 'off' | 'observe' | 'enforce', maxRank: number }
  /**
   * SESSION_FORMAT=jwt: thirdLogin answers a signed access token and a rotating refresh token
   * (docs/sessions-jwt.md); undefined: opaque session tokens (the default).
   */
  jwt?: JwtSessionConfig | undefined
  /** PII_ENCRYPTION_KEY_FILE: phone numbers sealed at rest. Required with Redis or SQL; optional in memory. */
  piiKeys?: PiiKey[] | undefined
  trustProxy: TrustProxy
  /** LOG_ACCESS_SAMPLE_RATE, LOG_SLOW_REQUEST_MS; errors are always logged. */
  accessLog?: AccessLogOptions
  /** REQUEST_TIMEOUT_SECONDS: how long a client may take to send a request. */
  http?: HttpLimits
}

export interface JwtSessionConfig {
  /** SESSION_SIGNING_KEYS_FILE: the first signs, all verify. */
  keys: SigningKey[]
  issuer: string
  audience: string
  /** ACCESS_TOKEN_TTL_SECONDS: the access token's life; the refresh token lives SESSION_TTL_SECONDS. */
  accessTtlSeconds: number
  /** REFRESH_TOKEN_GRACE_SECONDS: how long the refresh token spent last answers again with the same successor. */
  graceSeconds: number
}

function readJwt (r: EnvReader, sessionTtlSeconds: number): JwtSessionConfig | undefined {
  const format = r.string('SESSION_FORMAT', 'opaque')
  if (format !== 'opaque' && format !== 'jwt') throw new ConfigError('SESSION_FORMAT', 'must be opaque or jwt')
  if (format === 'opaque') return undefined
  const text = r.secret('SESSION_SIGNING_KEYS')
  if (text === undefined) {
    throw new ConfigError(
      'SESSION_SIGNING_KEYS_FILE',
      'is required with SESSION_FORMAT=jwt (a JWKS with private keys; `pnpm dev-secrets` writes one)'
    )
  }
  const accessTtlSeconds = r.int('ACCESS_TOKEN_TTL_SECONDS', 900, { min: 30, max: 86_400 })
  if (accessTtlSeconds > sessionTtlSeconds) {
    throw new ConfigError('ACCESS_TOKEN_TTL_SECONDS', "must not exceed SESSION_TTL_SECONDS (the refresh token's life)")
  }
  return {
    keys: parseSigningKeys(text),
    issuer: r.string('SESSION_JWT_ISSUER', 'wxlogin'),
    audience: r.string('SESSION_JWT_AUDIENCE', 'wxlogin-api'),
    accessTtlSeconds,
    graceSeconds: r.int('REFRESH_TOKEN_GRACE_SECONDS', 5, { min: 0, max: 60 })
  }
}

/** LOGIN_APPS (a JSON list of appids) or WECHAT_APPID (one app); one of them. */
function readApps (r: EnvReader): string[] {
  const apps = readAppList(r, 'LOGIN_APPS', 'several mini-programs')
  if ('single' in apps) return [apps.single]
  apps.list.forEach((a, i) => {
    if (typeof a !== 'string' || !APPID.test(a)) throw new ConfigError('LOGIN_APPS', `entry ${i} is not an appid`)
  })
  if (new Set(apps.list).size !== apps.list.length) throw new ConfigError('LOGIN_APPS', 'lists an appid twice')
  return apps.list as string[]
}

/** Phone numbers are personal information: a store that keeps them on disk keeps them sealed. */
function readPiiKeys (r: EnvReader, persistent: boolean): PiiKey[] | undefined {
  const text = r.secret('PII_ENCRYPTION_KEY')
  if (text === undefined) {
    if (persistent) {
      throw new ConfigError(
        'PII_ENCRYPTION_KEY_FILE',
        'is required with a persistent store (Redis or DATABASE_URL): phone numbers are encrypted at rest (`pnpm ' +
          'dev-secrets` writes one)'
      )
    }
    return undefined
  }
  return parsePiiKeys(text)
}

export function loadConfig (env: Env): LoginConfig {
  const r = new EnvReader(env)
  const apps = readApps(r)
  const brokerToken = r.secret('BROKER_TOKEN', true)
  const redis = readRedisConnection(r)
  const database = readDatabaseConfig(r)
  const sessionTtlSeconds = r.int('SESSION_TTL_SECONDS', 604800, { min: 60 })
  return {
    host: r.string('HOST', '0.0.0.0'),
    port: r.port('PORT', 3000),
    metricsPort: r.port('METRICS_PORT', 9464),
    logLevel: r.level('LOG_LEVEL'),
    redis,
    redisKeyPrefix: r.string('REDIS_KEY_PREFIX', 'wxlogin:'),
    database,
    brokerUrl: r.url('BROKER_URL'),
    brokerToken,
    brokerAllowHttp: r.bool('BROKER_ALLOW_HTTP', false),
    brokerTimeoutMs: r.int('BROKER_TIMEOUT_MS', 3000, { min: 500, max: 60_000 }),
    apps,
    phoneRateLimitMax: r.int('PHONE_RATE_LIMIT_MAX', 5, { min: 1 }),
    phoneRateLimitWindowSeconds: r.int('PHONE_RATE_LIMIT_WINDOW_SECONDS', 60, { min: 1 }),
    ipRateLimitMax: r.int('IP_RATE_LIMIT_MAX', 60, { min: 1 }),
    ipRateLimitWindowSeconds: r.int('IP_RATE_LIMIT_WINDOW_SECONDS', 60, { min: 1 }),
    ipv6Prefix: r.int('IP_RATE_LIMIT_IPV6_PREFIX', 64, { min: 16, max: 128 }),
    codeFailures: {
      budget: r.int('CODE_FAILURE_BUDGET', 100, { min: 1 }),
      windowSeconds: r.int('CODE_FAILURE_WINDOW_SECONDS', 60, { min: 1, max: 3600 }),
      perIp: r.int('CODE_FAILURE_IP_MAX', 3, { min: 1 })
    },
    sessionTtlSeconds,
    jwt: readJwt(r, sessionTtlSeconds),
    sessionsPerUserMax: r.int('SESSIONS_PER_USER_MAX', 20, { min: 1, max: 10_000 }),
    eventsMaxLen: r.int('LOGIN_EVENTS_MAXLEN', 100_000, { min: 100, max: 100_000_000 }),
    eventsIncludePhone: r.bool('EVENTS_INCLUDE_PHONE', false),
    retryWithoutKey: r.bool('LOGIN_RETRY_WITHOUT_KEY', false),
    wechatEventsReceive: r.bool('WECHAT_EVENTS_RECEIVE', false),
    risk: {
      policy: riskPolicy(r.string('LOGIN_RISK_POLICY', 'off')),
      maxRank: r.int('LOGIN_RISK_MAX_RANK', 3, { min: 0, max: 4 })
    },
    piiKeys: readPiiKeys(r, redis !== undefined || database !== undefined),
    trustProxy: readTrustProxy(r),
    accessLog: readAccessLog(r),
    http: readHttpLimits(r)
  }
}

/**
 * The longest a thirdLogin can take: code2session and the phone number through the broker (each
 * at most BROKER_TIMEOUT_MS), a margin of one more, and the answers' patience for a store that
 * stopped answering (KEEP_PATIENCE_MS). SIGTERM waits this long plus a margin, so a deploy never
 * drops a phone exchange that WeChat has already billed.
 */
export function worstCaseLoginMs (c: LoginConfig): number {
  return 3 * c.brokerTimeoutMs + KEEP_PATIENCE_MS
}

function riskPolicy (value: string): LoginConfig['risk']['policy'] {
  if (value === 'off' || value === 'observe' || value === 'enforce') return value
  throw new ConfigError('LOGIN_RISK_POLICY', `must be off, observe or enforce, not "${value}"`)
}
