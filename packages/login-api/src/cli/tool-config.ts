import type { FastifyBaseLogger } from 'fastify'
import {
  ConfigError,
  EnvReader,
  readRedisConnection,
  type Env,
  type RedisConnection,
  type RedisHandle
} from '@wxlogin/service-kit'
import { LoginKeys } from '../keys.js'
import { parsePiiKeys, PiiCipher } from '../users/pii.js'
import { readDatabaseConfig, type DatabaseConfig } from '../users/sql/database-config.js'
import { SqlDatabase } from '../users/sql/database.js'

/** What `pnpm migrate` and `pnpm import-users` print: one line each, never a URL or a secret. */
export const toolLog = {
  info: (msg: string) => {
    process.stdout.write(`${msg}\n`)
  },
  warn: (msg: string) => {
    process.stderr.write(`${msg}\n`)
  }
}

/** pino's interface as the stores use it: warnings as one line (the message alone), nothing else. */
export const quietLogger = {
  warn: (o: unknown, m?: string) => {
    toolLog.warn(m ?? (typeof o === 'string' ? o : 'warning'))
  },
  info: () => {},
  debug: () => {},
  trace: () => {},
  error: (o: unknown, m?: string) => {
    toolLog.warn(m ?? (typeof o === 'string' ? o : 'error'))
  },
  fatal: () => {},
  child: () => quietLogger,
  level: 'warn'
} as unknown as FastifyBaseLogger

/** `read`, or its ConfigError on one line and exit 2 (a usage error, unlike a failed run's 1). */
function orExit<T> (tool: string, read: () => T): T {
  try {
    return read()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${tool}: ${err.message}\n`)
    process.exit(2)
  }
}

function requiredDatabase (r: EnvReader, tool: string): DatabaseConfig {
  const config = readDatabaseConfig(r)
  if (config === undefined) {
    throw new ConfigError(
      'DATABASE_URL',
      `is required for ${tool} (postgres://... or mysql://..., or DATABASE_URL_FILE)`
    )
  }
  return config
}

/**
 * The tools read the login-api's own variables, but only those they need (no broker, no apps):
 * `pnpm migrate` the database alone.
 */
export function migrateConfig (env: Env): { database: SqlDatabase, config: DatabaseConfig } {
  const config = orExit('migrate', () => requiredDatabase(new EnvReader(env), 'migrate'))
  return { database: new SqlDatabase(config, quietLogger), config }
}

export interface ImportSettings {
  redis: RedisConnection
  pii: PiiCipher
  keys: LoginKeys
}

/** `pnpm import-users`: the database, and the Redis store to copy from with its keys (REDIS_KEY_PREFIX). */
export function importConfig (env: Env): { database: SqlDatabase, config: DatabaseConfig, settings: ImportSettings } {
  const { config, settings } = orExit('import-users', () => {
    const r = new EnvReader(env)
    const config = requiredDatabase(r, 'import-users')
    const redis = readRedisConnection(r)
    if (redis === undefined) {
      throw new ConfigError(
        'REDIS_URL',
        'is required: the Redis store to copy users from (or REDIS_SENTINELS, REDIS_CLUSTER_NODES)'
      )
    }
    const pii = new PiiCipher(parsePiiKeys(r.secret('PII_ENCRYPTION_KEY', true)))
    return { config, settings: { redis, pii, keys: new LoginKeys(r.string('REDIS_KEY_PREFIX', 'wxlogin:')) } }
  })
  return { database: new SqlDatabase(config, quietLogger), config, settings }
}

export interface ResealSettings {
  redis: RedisConnection | undefined
  database: SqlDatabase | undefined
  pii: PiiCipher
  keys: LoginKeys
}

/**
 * `pnpm pii-reseal` and `pnpm migrate-legacy`: the key file, and the stores the service would use:
 * the users in DATABASE_URL or else in Redis, and the kept phone answers and sessions in Redis.
 */
export function resealConfig (env: Env, tool: 'pii-reseal' | 'migrate-legacy' = 'pii-reseal'): ResealSettings {
  const settings = orExit(tool, () => {
    const r = new EnvReader(env)
    const database = readDatabaseConfig(r)
    const redis = readRedisConnection(r)
    if (tool === 'migrate-legacy' && redis === undefined) {
      throw new ConfigError('REDIS_URL', 'is required (or REDIS_SENTINELS, REDIS_CLUSTER_NODES): the store to migrate')
    }
    if (database === undefined && redis === undefined) {
      throw new ConfigError('REDIS_URL', 'or DATABASE_URL is required: the stores whose phone numbers to seal again')
    }
    const pii = new PiiCipher(parsePiiKeys(r.secret('PII_ENCRYPTION_KEY', true)))
    return { database, redis, pii, keys: new LoginKeys(r.string('REDIS_KEY_PREFIX', 'wxlogin:')) }
  })
  const database = settings.database === undefined ? undefined : new SqlDatabase(settings.database, quietLogger)
  return { ...settings, database }
}

/** An error for the terminal: its message and code, without a stack or a connection string. */
export function failure (tool: string, err: unknown): never {
  const e = err as { message?: string, code?: unknown }
  process.stderr.write(
    `${tool}: failed: ${e.message ?? String(err)}${typeof e.code === 'string' ? ` (${e.code})` : ''}\n`
  )
  process.exit(1)
}

/** A started Redis handle once it answers (10 s at most); `redis.ok()` is what the tools wait on. */
export async function readyRedis (redis: RedisHandle): Promise<RedisHandle> {
  const started = Date.now()
  while (!redis.ok()) {
    if (Date.now() - started > 10_000) throw new Error(`Redis: ${redis.problem() ?? 'not ready'}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return redis
}
