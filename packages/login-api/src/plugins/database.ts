import fp from 'fastify-plugin'
import { StartupError } from '@wxlogin/service-kit'
import type { SqlDatabase } from '../users/sql/database.js'
import { databaseTarget } from '../users/sql/database-config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** DATABASE_URL: the SQL database users live in; null when users live in Redis or memory. */
    database: SqlDatabase | null
  }
}

/** How long a starting instance waits for its database before it gives up (and is restarted). */
const START_PATIENCE_MS = 30_000

/**
 * Opens the user database and checks its schema before the service answers anything: an
 * instance never runs on a schema older than it needs. MIGRATE_ON_START=true applies what is
 * pending instead (development and compose; production runs `pnpm migrate` as a step of its own).
 */
export default fp(
  async app => {
    const config = app.loginConfig.database
    if (config === undefined) {
      app.decorate('database', null)
      return
    }
    // Loaded only when users live in SQL: kysely with pg and mysql2 hold about 30 MB of a
    // process's memory, which an instance keeping its users in Redis does not pay.
    const [{ SqlDatabase }, { migrateToLatest, pendingMigrations }] = await Promise.all([
      import('../users/sql/database.js'),
      import('../users/sql/schema.js')
    ])
    const database = new SqlDatabase(config, app.log)
    app.addHook('onClose', async () => {
      await database.close()
    })
    const target = databaseTarget(config.url)
    const deadline = Date.now() + START_PATIENCE_MS
    let pending: string[] | undefined
    for (;;) {
      try {
        if (config.migrateOnStart) {
          const applied = await migrateToLatest(database.db, config.dialect)
          if (applied.length > 0) app.log.info({ applied }, 'database migrated (MIGRATE_ON_START)')
          pending = []
        } else {
          pending = await pendingMigrations(database.db, config.dialect)
        }
        break
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if (Date.now() > deadline) {
          await database.close()
          throw new StartupError(
            `the database ${target} (${config.dialect}) could not be reached or ` +
              `read${typeof code === 'string' ? ` (${code})` : ''}`,
            { cause: err }
          )
        }
        app.log.warn({ database: target, code }, 'waiting for the database')
        await new Promise(resolve => setTimeout(resolve, 1000))
      }
    }
    if (pending.length > 0) {
      await database.close()
      throw new StartupError(
        `the database ${target} has a schema older than this release needs (pending: ${pending.join(', ')}); run ` +
          '`pnpm migrate` (MIGRATE_ON_START=true applies it at start in development)'
      )
    }
    database.start()
    app.decorate('database', database)
  },
  { name: 'database', dependencies: ['login-context'] }
)
