import type { Test } from 'tap'
import { startMariadbServer, startPostgresServer, type SqlServer } from '@wxlogin/testing'
import type { DatabaseConfig } from '../src/users/sql/database-config.js'

/** Both dialects, each on a private server this test starts (never the machine's own). */
export const DIALECTS: Array<{ name: string, start: (t: Test) => Promise<SqlServer> }> = [
  { name: 'PostgreSQL', start: startPostgresServer },
  { name: 'MariaDB', start: startMariadbServer }
]

export function databaseConfig (server: SqlServer, overrides: Partial<DatabaseConfig> = {}): DatabaseConfig {
  return { url: server.url, dialect: server.dialect, poolSize: 5, statementTimeoutMs: 1000, connectTimeoutMs: 1000, migrateOnStart: true, ...overrides }
}
