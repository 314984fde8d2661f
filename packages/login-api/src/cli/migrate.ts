import { databaseTarget } from '../users/sql/database-config.js'
import { migrateToLatest, pendingMigrations } from '../users/sql/schema.js'
import { failure, migrateConfig, toolLog } from './tool-config.js'

// `pnpm migrate`: applies the user store's pending migrations to DATABASE_URL; `--check` only
// says whether any are pending (exit 3 if so), for a deploy pipeline's gate.
// The entry point reads the environment, as server.ts does; the config module only parses it.
const { database, config } = migrateConfig(process.env)
const check = process.argv.includes('--check')
try {
  const target = databaseTarget(config.url)
  if (check) {
    const pending = await pendingMigrations(database.db, config.dialect)
    toolLog.info(
      pending.length === 0 ? `migrate: ${target} is up to date` : `migrate: ${target} needs: ${pending.join(', ')}`
    )
    process.exitCode = pending.length === 0 ? 0 : 3
  } else {
    const applied = await migrateToLatest(database.db, config.dialect)
    toolLog.info(
      applied.length === 0 ? `migrate: ${target} was up to date` : `migrate: ${target}: applied ${applied.join(', ')}`
    )
  }
} catch (err) {
  await database.close().catch(() => {})
  failure('migrate', err)
}
await database.close()
