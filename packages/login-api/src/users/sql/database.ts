import { CompiledQuery, Kysely, MysqlDialect, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createPool } from 'mysql2'
import type { FastifyBaseLogger } from 'fastify'
import { withTimeout } from '@wxlogin/service-kit'
import type { DatabaseConfig } from './database-config.js'
import type { Tables } from './schema.js'

/** A store operation that did not finish within DATABASE_STATEMENT_TIMEOUT_MS (a frozen or lost database). */
export class DatabaseTimeoutError extends Error {
  constructor (ms: number) {
    super(`the database did not answer within ${ms} ms`)
    this.name = 'DatabaseTimeoutError'
  }
}

/** Thrown inside a transaction whose caller already gave up: it rolls back instead of committing late. */
class Abandoned extends Error {}

const PROBE_INTERVAL_MS = 1000

/**
 * The SQL database of the user store: a Kysely over a pg or mysql2 pool. Every operation is
 * bounded (a frozen server answers nothing, and a TCP connection to it stays open), and a probe
 * each second tells a frozen or unreachable database from a live one for /readyz and for the
 * login, which refuses to spend a code it could not save. The URL is never logged.
 */
export class SqlDatabase {
  readonly db: Kysely<Tables>
  private lastOk = 0
  private lastError: string | undefined = 'connecting'
  private probing = false
  private timer: NodeJS.Timeout | undefined

  constructor (
    readonly config: DatabaseConfig,
    private readonly log: FastifyBaseLogger
  ) {
    this.db = new Kysely<Tables>({ dialect: config.dialect === 'postgres' ? this.postgres() : this.mysql() })
  }

  private postgres (): PostgresDialect {
    const c = this.config
    const pool = new pg.Pool({
      connectionString: c.url,
      max: c.poolSize,
      connectionTimeoutMillis: c.connectTimeoutMs,
      keepAlive: true,
      // The server's own bounds: a statement or lock wait past the timeout is cancelled, and a
      // transaction whose client vanished (frozen, partitioned) does not hold its locks for ever.
      statement_timeout: c.statementTimeoutMs,
      lock_timeout: c.statementTimeoutMs,
      idle_in_transaction_session_timeout: Math.max(10_000, 5 * c.statementTimeoutMs),
      application_name: 'wxlogin-login-api'
    })
    // A connection the server drops must not crash the process: the pool listens only while a
    // client is idle, and a checked-out client between statements would emit to nobody.
    const lost = (err: Error): void => {
      this.log.warn({ err: { message: err.message } }, 'database connection lost')
    }
    pool.on('error', lost)
    pool.on('connect', client => {
      client.on('error', lost)
    })
    return new PostgresDialect({ pool })
  }

  private mysql (): MysqlDialect {
    const c = this.config
    const pool = createPool({
      uri: c.url,
      connectionLimit: c.poolSize,
      connectTimeout: c.connectTimeoutMs,
      // mysql2 has no timeout for a free connection: while the database is frozen, callers
      // wait in this queue; past it they fail at once (503) rather than pile up in memory.
      queueLimit: 50 * c.poolSize,
      enableKeepAlive: true,
      // Timestamps are written and read as UTC whatever the server's time zone.
      timezone: 'Z',
      charset: 'utf8mb4_bin'
    })
    pool.on('connection', conn => {
      conn.on('error', (err: Error) => {
        this.log.warn({ err: { message: err.message } }, 'database connection lost')
      })
    })
    const lockWait = Math.max(1, Math.ceil(c.statementTimeoutMs / 1000))
    return new MysqlDialect({
      pool,
      onCreateConnection: async conn => {
        await conn.executeQuery(CompiledQuery.raw(`SET SESSION innodb_lock_wait_timeout = ${lockWait}`))
      }
    })
  }

  /**
   * `op` bounded by the statement timeout. `live()` throws once the caller has given up, so a
   * transaction that resumes after a freeze rolls back rather than commit what nobody waits for.
   */
  async run<T>(op: (live: () => void) => Promise<T>): Promise<T> {
    let abandoned = false
    const live = (): void => {
      if (abandoned) throw new Abandoned('abandoned after a timeout')
    }
    const p = op(live)
    p.catch(() => {})
    const ms = this.config.statementTimeoutMs
    return await withTimeout(p, ms, () => {
      abandoned = true
      return new DatabaseTimeoutError(ms)
    })
  }

  start (): void {
    this.probe()
    this.timer = setInterval(() => {
      this.probe()
    }, PROBE_INTERVAL_MS)
    this.timer.unref()
  }

  private probe (): void {
    if (this.probing) return
    this.probing = true
    this.run(async () => await sql`select 1`.execute(this.db))
      .then(
        () => {
          if (this.lastError !== undefined && this.lastError !== 'connecting') this.log.info('database answering again')
          this.lastOk = Date.now()
          this.lastError = undefined
        },
        (err: Error) => {
          const reason = err instanceof DatabaseTimeoutError ? 'database not answering' : 'database unreachable'
          if (this.lastError !== reason) {
            this.log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, reason)
          }
          this.lastError = reason
        }
      )
      .finally(() => {
        this.probing = false
      })
  }

  /** Why the database cannot serve now, or undefined while it can. */
  problem (): string | undefined {
    if (this.lastError !== undefined) return this.lastError
    // A probe that has not come back within its bound: frozen before the probe could say so.
    if (Date.now() - this.lastOk > PROBE_INTERVAL_MS + this.config.statementTimeoutMs) return 'database not answering'
    return undefined
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    await this.db.destroy()
  }
}
