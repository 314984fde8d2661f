import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, EnvReader, type Env } from '@wxlogin/service-kit'
import { readDatabaseConfig, type DatabaseConfig } from '../sql/database-config.js'
import { SqlDatabase } from '../sql/database.js'

/** What `pnpm migrate` and `pnpm import-users` print: one line each, never a URL or a secret. */
export const toolLog = {
  info: (msg: string) => { process.stdout.write(`${msg}\n`) },
  warn: (msg: string) => { process.stderr.write(`${msg}\n`) }
}

/** pino's interface as the stores use it: warnings as one line (the message alone), nothing else. */
export const quietLogger = {
  warn: (o: unknown, m?: string) => { toolLog.warn(m ?? (typeof o === 'string' ? o : 'warning')) },
  info: () => {},
  debug: () => {},
  trace: () => {},
  error: (o: unknown, m?: string) => { toolLog.warn(m ?? (typeof o === 'string' ? o : 'error')) },
  fatal: () => {},
  child: () => quietLogger,
  level: 'warn'
} as unknown as FastifyBaseLogger

/** The tools read the login-api's own variables, but only those they need (no broker, no apps). */
export function toolDatabase (env: Env, tool: string): { database: SqlDatabase, config: DatabaseConfig, reader: EnvReader } {
  const reader = new EnvReader(env)
  let config: DatabaseConfig | undefined
  try {
    config = readDatabaseConfig(reader)
    if (config === undefined) throw new ConfigError('DATABASE_URL', `is required for ${tool} (postgres://... or mysql://..., or DATABASE_URL_FILE)`)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${tool}: ${err.message}\n`)
    process.exit(2)
  }
  return { database: new SqlDatabase(config, quietLogger), config, reader }
}

/** An error for the terminal: its message and code, without a stack or a connection string. */
export function failure (tool: string, err: unknown): never {
  const e = err as { message?: string, code?: unknown }
  process.stderr.write(`${tool}: failed: ${e.message ?? String(err)}${typeof e.code === 'string' ? ` (${e.code})` : ''}\n`)
  process.exit(1)
}
