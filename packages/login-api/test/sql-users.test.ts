import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { sql } from 'kysely'
import { login, retryKey } from './helper.js'
import { stack } from './stack.js'
import { databaseConfig, DIALECTS } from './sql.js'

const A = 'wxsqlapp00000000a'
const B = 'wxsqlapp00000000b'

for (const dialect of DIALECTS) {
  t.test(`${dialect.name}: users live in SQL`, async t => {
    const server = await dialect.start(t)
    // 20 logins race on 5 connections an instance, and the broker answers them from this same
    // process: on a busy CI machine a transaction with its retries, or a broker call, can pass the
    // tests' usual 1 s bounds, which is not what these tests are about.
    const database = databaseConfig(server, { statementTimeoutMs: 5000 })
    const { apps, mint, redis } = await stack(t, 2, { appids: [A, B], login: { database, brokerTimeoutMs: 5000 } })
    const [a, b] = apps as [FastifyInstance, FastifyInstance]
    const db = a.database?.db
    if (db === undefined) throw new Error('no database')

    t.test('a login writes the user, its identity and its phone, sealed', async t => {
      const { code, phoneCode } = await mint('sql-user-1', { appid: A, unionid: 'union-sql-1', phoneNumber: '13912345678' })
      const res = await login(a, { code, phoneCode, nickname: 'Zoë 🐼', appid: A, retry_key: retryKey() })
      t.equal(res.statusCode, 200)
      const body = res.json()
      t.match(body, { is_new_user: true, user: { openid: 'sql-user-1', unionid: 'union-sql-1', nickname: 'Zoë 🐼', phone: { purePhoneNumber: '13912345678' } } })
      const row = await db.selectFrom('wxlogin_users').selectAll().where('user_id', '=', body.user.user_id).executeTakeFirstOrThrow()
      t.match(row, { unionid: 'union-sql-1', nickname: 'Zoë 🐼', phone_masked: '139****5678', phone_country_code: '86' })
      t.match(row.phone_sealed, /^pii1:test:/, 'the number is sealed at rest')
      t.notMatch(JSON.stringify(row), /13912345678/, 'and nowhere in clear')
      t.same(await db.selectFrom('wxlogin_identities').select(['appid', 'openid']).where('user_id', '=', body.user.user_id).execute(), [{ appid: A, openid: 'sql-user-1' }])
      const second = await login(b, { code: (await mint('sql-user-1b', { appid: B, unionid: 'union-sql-1' })).code, appid: B })
      t.match(second.json(), { is_new_user: false, user: { user_id: body.user.user_id, openid: 'sql-user-1b', nickname: 'Zoë 🐼', phone: { purePhoneNumber: '13912345678' } } }, 'another app, same unionid: the same user')
      const me = await b.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: `Bearer ${second.json().token as string}` } })
      t.equal(me.json().user_id, body.user.user_id)
    })

    t.test('FLUSHALL on Redis loses sessions, never a user', async t => {
      const first = await login(a, { code: (await mint('sql-flush', { appid: A })).code, appid: A, nickname: 'Kept' })
      const client = createClient({ url: redis.url })
      await client.connect()
      await client.flushAll()
      await client.close()
      const me = await a.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: `Bearer ${first.json().token as string}` } })
      t.equal(me.statusCode, 401, 'the session is gone with Redis')
      const again = await login(b, { code: (await mint('sql-flush', { appid: A })).code, appid: A })
      t.equal(again.statusCode, 200)
      t.match(again.json(), { is_new_user: false, user: { user_id: first.json().user.user_id, nickname: 'Kept' } }, 'the same user_id, profile intact')
    })

    t.test('20 concurrent first logins of one unionid, from two apps on two instances: one user, one is_new_user', async t => {
      const codes = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const appid = i % 2 === 0 ? A : B
        return { appid, code: (await mint(`racer-${appid}`, { appid, unionid: 'union-race' })).code }
      }))
      const results = await Promise.all(codes.map(async ({ appid, code }, i) => await login(i % 4 < 2 ? a : b, { code, appid })))
      t.same(results.map(r => r.statusCode), Array(20).fill(200), JSON.stringify(results.filter(r => r.statusCode !== 200).map(r => r.json())))
      t.equal(new Set(results.map(r => r.json().user.user_id)).size, 1, 'one user_id')
      t.equal(results.filter(r => r.json().is_new_user === true).length, 1, 'exactly one is new')
      const rows = await db.selectFrom('wxlogin_users').select('user_id').where('unionid', '=', 'union-race').execute()
      t.equal(rows.length, 1, 'one row')
      const ids = await db.selectFrom('wxlogin_identities').select(['appid', 'openid']).where('user_id', '=', rows[0]?.user_id as string).orderBy('appid').execute()
      t.same(ids, [{ appid: A, openid: `racer-${A}` }, { appid: B, openid: `racer-${B}` }])
      const orphans = await sql<{ n: number }>`select count(*) as n from wxlogin_users u where not exists (select 1 from wxlogin_identities i where i.user_id = u.user_id)`.execute(db)
      t.equal(Number(orphans.rows[0]?.n), 0, 'no user left without an identity by a lost race')
    })

    t.test('account deletion removes the rows', async t => {
      const res = await login(a, { code: (await mint('sql-leaver', { appid: A, unionid: 'union-leaver' })).code, appid: A })
      const id = res.json().user.user_id as string
      const del = await a.inject({ method: 'DELETE', url: '/api/user/me', headers: { authorization: `Bearer ${res.json().token as string}` }, payload: { confirm: true } })
      t.equal(del.statusCode, 204)
      t.equal((await db.selectFrom('wxlogin_users').select('user_id').where('user_id', '=', id).execute()).length, 0)
      t.equal((await db.selectFrom('wxlogin_identities').select('user_id').where('user_id', '=', id).execute()).length, 0)
      const back = await login(b, { code: (await mint('sql-leaver', { appid: A, unionid: 'union-leaver' })).code, appid: A })
      t.match(back.json(), { is_new_user: true }, 'a later login is a new user')
      t.not(back.json().user.user_id, id)
    })
  })
}
