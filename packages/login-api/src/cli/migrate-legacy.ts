import { RedisHandle } from '@wxlogin/service-kit'
import { NoEvents, RedisStreamEvents } from '../login/events.js'
import { migrateLegacy, type LegacyReport } from '../users/redis/legacy-migration.js'
import { RedisUserStore } from '../users/redis/redis-user-store.js'
import { SqlUserStore } from '../users/sql/sql-user-store.js'
import { pendingMigrations } from '../users/sql/schema.js'
import type { UserStore } from '../users/user-store.js'
import { failure, quietLogger, readyRedis, resealConfig, toolLog } from './tool-config.js'

// `pnpm migrate-legacy`: once, when upgrading from a release that wrote users and sessions before
// user_ids (docs/deploy.md: upgrading from a release before user_ids). Idempotent: run it again
// until it reports nothing.
const tool = 'migrate-legacy'
// The entry point reads the environment, as server.ts does; the config module only parses it.
const { redis: connection, database, pii, keys } = resealConfig(process.env, tool)
let redis: RedisHandle | undefined

const line = (r: LegacyReport): string =>
  `${r.adopted} records adopted, ${r.covered} already adopted (deleted), ${r.linked} sessions linked, ` +
  `${r.ended} sessions ended, ${r.indexes} old indexes folded, ${r.markers} markers spent`

try {
  if (database !== undefined) {
    const migrations = await pendingMigrations(database.db, database.config.dialect)
    if (migrations.length > 0) {
      throw new Error(`the database schema is not up to date (pending: ${migrations.join(', ')}); run \`pnpm migrate\``)
    }
  }
  redis = new RedisHandle(connection as NonNullable<typeof connection>, quietLogger, 'migrate').start()
  await readyRedis(redis)
  const sides = { events: new NoEvents(), exchanges: { annotate: async () => {} } }
  // The users where the service keeps them: old records are adopted only into Redis (import-users
  // copies them into SQL).
  const users: UserStore =
    database !== undefined
      ? new SqlUserStore(database, pii, sides)
      : new RedisUserStore(redis, keys, pii, new RedisStreamEvents(redis, keys, 1, false))
  const report = await migrateLegacy(redis, keys, users, {
    adopt: database === undefined,
    progress: r => { toolLog.info(`${tool}: ${line(r)}`) }
  })
  toolLog.info(`${tool}: done: ${line(report)}`)
} catch (err) {
  await redis?.close().catch(() => {})
  await database?.close().catch(() => {})
  failure(tool, err)
}
await redis?.close()
await database?.close()
