import { ConfigError, type EnvReader } from '@wxlogin/service-kit'

export type SqlDialect = 'postgres' | 'mysql'

/** DATABASE_URL and its bounds: users live in PostgreSQL or MySQL/MariaDB (docs/sql-users.md). */
export interface DatabaseConfig {
  /** Holds the password: never logged, never in an error message. */
  url: string
  dialect: SqlDialect
  /** DATABASE_POOL_SIZE: connections per login-api instance. */
  poolSize: number
  /**
   * DATABASE_STATEMENT_TIMEOUT_MS: one store operation (a transaction) gives up after this; the
   * server cancels a statement past it.
   */
  statementTimeoutMs: number
  /** DATABASE_CONNECT_TIMEOUT_MS: opening a connection, or waiting for a free one in the pool. */
  connectTimeoutMs: number
  /** MIGRATE_ON_START: apply pending migrations at start (development, compose); otherwise `pnpm migrate`. */
  migrateOnStart: boolean
}

const DIALECTS: Record<string, SqlDialect> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql'
}

/** The dialect a DATABASE_URL names; the URL itself never appears in the error. */
export function dialectOf (url: string): SqlDialect {
  let protocol: string
  try {
    const u = new URL(url)
    protocol = u.protocol
    if (u.hostname === '' || u.pathname.length < 2) {
      throw new ConfigError(
        'DATABASE_URL',
        'must name a host and a database (postgres://user:password@host:5432/db or mysql://user:password@host:3306/db)'
      )
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(
      'DATABASE_URL',
      'is not a URL (postgres://user:password@host:5432/db or mysql://user:password@host:3306/db)'
    )
  }
  const dialect = DIALECTS[protocol]
  if (dialect === undefined) throw new ConfigError('DATABASE_URL', 'must start with postgres:// or mysql://')
  return dialect
}

/** Where the database is, for messages: host, port and database name; never the credentials. */
export function databaseTarget (url: string): string {
  const u = new URL(url)
  return `${u.hostname}${u.port === '' ? '' : `:${u.port}`}${u.pathname}`
}

/** Undefined when DATABASE_URL (and DATABASE_URL_FILE) is unset: users stay in Redis or memory. */
export function readDatabaseConfig (r: EnvReader): DatabaseConfig | undefined {
  const url = r.secret('DATABASE_URL')
  if (url === undefined) return undefined
  return {
    url,
    dialect: dialectOf(url),
    poolSize: r.int('DATABASE_POOL_SIZE', 10, { min: 1, max: 500 }),
    statementTimeoutMs: r.int('DATABASE_STATEMENT_TIMEOUT_MS', 2000, { min: 100, max: 60_000 }),
    connectTimeoutMs: r.int('DATABASE_CONNECT_TIMEOUT_MS', 3000, { min: 100, max: 60_000 }),
    migrateOnStart: r.bool('MIGRATE_ON_START', false)
  }
}
