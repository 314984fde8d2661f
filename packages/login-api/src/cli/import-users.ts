import { RedisHandle } from '@wxlogin/service-kit'
import { importUsers } from '../users/sql/import-users.js'
import { pendingMigrations } from '../users/sql/schema.js'
import { failure, importConfig, quietLogger, readyRedis, toolLog } from './tool-config.js'

// `pnpm import-users`: copies the users of the Redis store (REDIS_URL, REDIS_SENTINELS or
// REDIS_CLUSTER_NODES, REDIS_KEY_PREFIX) into DATABASE_URL; run it again at will (docs/sql-users.md).
const tool = 'import-users'
// The entry point reads the environment, as server.ts does; the config module only parses it.
const { database, config, settings } = importConfig(process.env)
let redis: RedisHandle | undefined
try {
  const pending = await pendingMigrations(database.db, config.dialect)
  if (pending.length > 0) {
    throw new Error(
      `the database schema is not up to date (pending: ${pending.join(', ')}); run \`pnpm migrate\` first`
    )
  }
  redis = new RedisHandle(settings.redis, quietLogger, 'import').start()
  await readyRedis(redis)
  const report = await importUsers(redis, settings.keys, database, settings.pii, r => {
    toolLog.info(`import-users: ${r.read} read, ${r.copied} copied, ${r.updated} updated, ${r.unchanged} unchanged`)
  })
  for (const c of report.conflicts) toolLog.warn(`import-users: user ${c.user_id}: ${c.reason}`)
  toolLog.info(
    `import-users: done: ${report.read} read, ${report.copied} copied, ${report.updated} updated, ` +
      `${report.unchanged} unchanged, ${report.conflicts.length} conflicts`
  )
} catch (err) {
  await redis?.close().catch(() => {})
  await database.close().catch(() => {})
  failure(tool, err)
}
await redis?.close()
await database.close()
