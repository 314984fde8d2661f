import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { TEST_PII_KEYS } from '@wxlogin/testing'
import { login } from './helper.js'
import { stack } from './stack.js'
import { databaseConfig, DIALECTS } from './sql.js'
import { buildApp } from '../src/app.js'
import { testConfig } from './helper.js'
import { runTool as run } from './tools.js'
import { SqlDatabase } from '../src/users/sql/database.js'
import { migrator } from '../src/users/sql/schema.js'
import { quietLogger } from '../src/cli/tool-config.js'

const A = 'wximportapp00000a'
const B = 'wximportapp00000b'

for (const dialect of DIALECTS) {
  t.test(`${dialect.name}: the schema gate, pnpm migrate, and pnpm import-users run twice`, async t => {
    const server = await dialect.start(t)
    const env = { DATABASE_URL: server.url, DATABASE_CONNECT_TIMEOUT_MS: '2000' }

    t.test('a service on an unmigrated database refuses to start, with one line', async t => {
      const check = await run('cli/migrate.js', env, ['--check'])
      t.equal(check.code, 3, 'migrate --check: pending')
      t.match(check.stdout, /needs: 0001-users-and-identities/)
      const started = await run('server.js', { ...env, WECHAT_APPID: A, BROKER_URL: 'http://127.0.0.1:9', BROKER_TOKEN: 'x'.repeat(40), PII_ENCRYPTION_KEY: TEST_PII_KEYS, PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'silent' })
      t.equal(started.code, 1)
      t.equal(started.stderr.trim().split('\n').length, 1, 'one line')
      t.match(started.stderr, /^login-api: the database 127\.0\.0\.1:\d+\/wxlogin has a schema older than this release needs \(pending: 0001-users-and-identities, 0002-phone-verified-at\); run `pnpm migrate`/)
      t.notMatch(started.stderr + started.stdout, /wx-test-password/, 'the password is never printed')
      await t.rejects(buildApp(testConfig({ database: databaseConfig(server, { migrateOnStart: false }) })), { name: 'StartupError' }, 'buildApp refuses too')
    })

    t.test('pnpm migrate applies the schema once; a second run has nothing to do', async t => {
      // A database of the first schema, with a user whose phone is on file.
      const early = new SqlDatabase(databaseConfig(server), quietLogger)
      const { error } = await migrator(early.db, early.config.dialect).migrateTo('0001-users-and-identities')
      t.equal(error, undefined)
      const at = new Date('2026-01-02T03:04:05.000Z')
      await early.db.insertInto('wxlogin_users').values({ user_id: 'u-early', unionid: null, nickname: null, head_pic: null, phone_sealed: 'x', phone_masked: '138****0000', phone_country_code: '86', created_at: at, updated_at: at } as never).execute()
      await early.db.insertInto('wxlogin_users').values({ user_id: 'u-nophone', unionid: null, nickname: null, head_pic: null, phone_sealed: null, phone_masked: null, phone_country_code: null, created_at: at, updated_at: at } as never).execute()
      const first = await run('cli/migrate.js', env)
      t.equal(first.code, 0, first.stderr)
      t.match(first.stdout, /applied 0002-phone-verified-at/)
      const rows = await early.db.selectFrom('wxlogin_users').select(['user_id', 'phone_verified_at']).orderBy('user_id').execute()
      t.same(rows.map(r => [r.user_id, r.phone_verified_at === null ? null : new Date(r.phone_verified_at).toISOString()]), [['u-early', at.toISOString()], ['u-nophone', null]], 'a phone on file counts as verified when its row last changed')
      await early.db.deleteFrom('wxlogin_users').execute()
      await early.close()
      const second = await run('cli/migrate.js', env)
      t.match(second.stdout, /was up to date/)
      t.equal((await run('cli/migrate.js', env, ['--check'])).code, 0)
      const app = await buildApp(testConfig({ database: databaseConfig(server, { migrateOnStart: false }) }))
      await app.close()
      t.pass('and the service starts')
    })

    t.test('pnpm import-users copies the Redis store, and a second run changes nothing', async t => {
      // Users made the way production made them: a login-api on Redis alone.
      const { apps, mint, redis } = await stack(t, 1, { appids: [A, B] })
      const onRedis = apps[0] as FastifyInstance
      const both = await login(onRedis, { ...(await mint('imp-1', { appid: A, unionid: 'union-imp', phoneNumber: '13700001111' })), appid: A, nickname: '导入' })
      await login(onRedis, { code: (await mint('imp-1b', { appid: B, unionid: 'union-imp' })).code, appid: B })
      const plain = await login(onRedis, { code: (await mint('imp-2', { appid: A })).code, appid: A })
      // A record from before user_ids, never logged in since.
      const client = createClient({ url: redis.url })
      await client.connect()
      await client.set(`wxlogin:user:${A}:imp-legacy`, JSON.stringify({ appid: A, openid: 'imp-legacy', unionid: null, nickname: 'Old', head_pic: null, phone: null, created_at: '2025-01-01T00:00:00.000Z', updated_at: '2025-01-02T00:00:00.000Z' }))
      await client.close()

      const importEnv = { ...env, REDIS_URL: redis.url, PII_ENCRYPTION_KEY: TEST_PII_KEYS }
      const first = await run('cli/import-users.js', importEnv)
      t.equal(first.code, 0, first.stderr)
      t.match(first.stdout, /done: 3 read, 3 copied, 0 updated, 0 unchanged, 0 conflicts/)
      const app = await buildApp(testConfig({ database: databaseConfig(server, { migrateOnStart: false }) }))
      t.teardown(() => app.close())
      const db = app.database?.db
      if (db === undefined) throw new Error('no database')
      const dump = async (): Promise<unknown> => ({
        users: await db.selectFrom('wxlogin_users').selectAll().orderBy('user_id').execute(),
        identities: await db.selectFrom('wxlogin_identities').selectAll().orderBy('appid').orderBy('openid').execute()
      })
      const rows = await dump()
      const second = await run('cli/import-users.js', importEnv)
      t.equal(second.code, 0, second.stderr)
      t.match(second.stdout, /done: 3 read, 0 copied, 0 updated, 3 unchanged, 0 conflicts/)
      t.same(await dump(), rows, 'the same rows after the second run')
      t.notMatch(first.stdout + first.stderr + second.stdout, /13700001111|wx-test-password/, 'no phone number or password printed')

      const user = await app.users.getUser(both.json().user.user_id)
      t.match(user, { unionid: 'union-imp', nickname: '导入', phone: { purePhoneNumber: '13700001111' }, identities: [{ appid: A, openid: 'imp-1' }, { appid: B, openid: 'imp-1b' }] }, 'the user, both identities and the phone, opened')
      t.equal(await app.users.userIdOf({ appid: A, openid: 'imp-2' }), plain.json().user.user_id)
      const legacy = await app.users.userIdOf({ appid: A, openid: 'imp-legacy' })
      t.ok(legacy, 'the pre-user_id record became a user')
      t.match(await app.users.getUser(legacy as string), { nickname: 'Old', created_at: '2025-01-01T00:00:00.000Z' })
    })
  })
}
