import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { waitFor } from '@wxlogin/testing'
import { login, retryKey } from '../helper.js'
import { stack } from '../stack.js'
import { databaseConfig, DIALECTS } from '../sql.js'

const BOUND_MS = 1000

for (const dialect of DIALECTS) {
  for (const fault of ['SIGCONT', 'SIGKILL'] as const) {
    const what = fault === 'SIGCONT' ? 'SIGSTOPped mid-login, then resumed' : 'SIGSTOPped mid-login, then SIGKILLed and restarted'
    t.test(`${dialect.name} ${what}: 503 within the bound, no half-written user, recovery without a restart`, async t => {
      const server = await dialect.start(t)
      const { apps, mint, sim } = await stack(t, 1, { login: { database: databaseConfig(server, { statementTimeoutMs: BOUND_MS }) } })
      const app = apps[0] as FastifyInstance
      const db = app.database?.db
      if (db === undefined) throw new Error('no database')
      const { code, phoneCode } = await mint('frozen-db-user')
      const key = retryKey()

      server.signal('SIGSTOP')
      const started = Date.now()
      const res = await login(app, { code, phoneCode, retry_key: key })
      const took = Date.now() - started
      t.equal(res.statusCode, 503)
      t.equal(res.json().error, 'store_unavailable')
      t.ok(took < BOUND_MS + 1500, `answered in ${took} ms (bound ${BOUND_MS} ms, plus the WeChat calls)`)
      await waitFor(async () => (await app.inject('/readyz')).statusCode === 503, { what: '/readyz 503' })
      const ready = (await app.inject('/readyz')).json()
      t.match(ready.checks, { database: /^database (not answering|unreachable)/ }, `/readyz names the database: ${JSON.stringify(ready.checks)}`)
      const calls = sim.state.calls.jscode2session
      const shed = await login(app, { code: (await mint('another-user')).code, retry_key: retryKey() })
      t.equal(shed.statusCode, 503, 'a login while the database is known down is refused...')
      t.equal(sim.state.calls.jscode2session, calls, '...before its code is spent')

      if (fault === 'SIGCONT') {
        server.signal('SIGCONT')
      } else {
        server.signal('SIGKILL')
        await server.stop()
        await server.start()
      }
      await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: '/readyz 200 again', timeoutMs: 20_000 })
      const rows = await db.selectFrom('wxlogin_identities').select('user_id').where('openid', '=', 'frozen-db-user').execute()
      t.equal(rows.length, 0, 'the abandoned transaction left nothing behind')
      t.equal((await db.selectFrom('wxlogin_users').select('user_id').execute()).length, 0, 'not even a user row')

      const retry = await login(app, { code, phoneCode, retry_key: key })
      t.equal(retry.statusCode, 200, 'the retry of the same codes logs in')
      t.match(retry.json(), { is_new_user: true, user: { openid: 'frozen-db-user', phone: { purePhoneNumber: '13800138000' } } })
      t.equal((await db.selectFrom('wxlogin_users').select('user_id').execute()).length, 1, 'one user, whole')
    })
  }
}
