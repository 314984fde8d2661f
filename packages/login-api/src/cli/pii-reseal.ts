import { RedisHandle } from '@wxlogin/service-kit'
import { emptyReport, pending, resealRedis, resealSql, type ResealReport } from '../users/pii-reseal.js'
import { pendingMigrations } from '../users/sql/schema.js'
import { failure, quietLogger, readyRedis, resealConfig, toolLog } from './tool-config.js'

// `pnpm pii-reseal`: seals every stored phone number again under the first line of
// PII_ENCRYPTION_KEY_FILE (docs/security.md: key rotation). `--check` changes nothing and exits 3
// while any value is still under another key: the gate before an old key line is removed.
const tool = 'pii-reseal'
// The entry point reads the environment, as server.ts does; the config module only parses it.
const { redis: connection, database, pii, keys } = resealConfig(process.env)
const check = process.argv.includes('--check')
let redis: RedisHandle | undefined

const line = (r: ResealReport): string => {
  const unreadable = [...r.unreadable].map(([id, n]) => `${n} under removed key ${id}`).join(', ')
  const verb = check ? 'to seal again' : 'sealed again'
  return `${r.read} read, ${r.current} current, ${r.resealed} ${verb}${unreadable === '' ? '' : `, ${unreadable}`}`
}

try {
  const report = emptyReport()
  const progress = (r: ResealReport): void => {
    toolLog.info(`${tool}: ${line(r)}`)
  }
  if (database !== undefined) {
    const migrations = await pendingMigrations(database.db, database.config.dialect)
    if (migrations.length > 0) {
      throw new Error(
        `the database schema is not up to date (pending: ${migrations.join(', ')}); run \`pnpm migrate\` first`
      )
    }
    await resealSql(database, pii, { check, progress }, report)
  }
  if (connection !== undefined) {
    redis = new RedisHandle(connection, quietLogger, 'reseal').start()
    await readyRedis(redis)
    await resealRedis(redis, keys, pii, { check, progress }, report)
  }
  toolLog.info(`${tool}: done: ${line(report)}`)
  if (report.legacy > 0) {
    toolLog.warn(
      `${tool}: ${report.legacy} records from before user_ids hold a phone in clear; pnpm migrate-legacy ` +
        '(users in Redis) or pnpm import-users (users in SQL) seals them'
    )
  }
  if (report.unreadable.size > 0) {
    toolLog.warn(
      `${tool}: values under key ids the file no longer holds (${[...report.unreadable.keys()].join(', ')}): put ` +
        'those lines back (below the first) and run again'
    )
  }
  // --check: 3 while any value is under another key; a run that could not seal everything: 1.
  if (check && pending(report) > 0) process.exitCode = 3
  else if (!check && report.unreadable.size > 0) process.exitCode = 1
} catch (err) {
  await redis?.close().catch(() => {})
  await database?.close().catch(() => {})
  failure(tool, err)
}
await redis?.close()
await database?.close()
