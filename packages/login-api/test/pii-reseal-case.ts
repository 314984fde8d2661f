// Key rotation for personal data at rest, one store's case: `pnpm pii-reseal` seals every stored
// phone number under the key file's first line, so the old line can go; deletion never needs a
// key. Run by pii-reseal.test.ts (Redis) and pii-reseal-sql.test.ts (PostgreSQL, MariaDB): files
// of their own, so that each stays well within tap's per-file timeout.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { TEST_PII_KEYS, waitFor, type SqlServer } from '@wxlogin/testing'
import { build, login } from './helper.js'
import { stack } from './stack.js'
import { databaseConfig } from './sql.js'
import { newPiiKeyLine, parsePiiKeys } from '../src/users/pii.js'
import { runTool } from './tools.js'

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

export function resealCase (store: { name: string, start: ((t: Test) => Promise<SqlServer>) | undefined }): void {
  t.test(`${store.name}: a key line removed locks nobody out of deletion; pii-reseal makes the removal safe`, async t => {
    const server = store.start === undefined ? undefined : await store.start(t)
    const database = server === undefined ? undefined : databaseConfig(server)
    const { apps, mint, redis } = await stack(t, 1, { login: { database } })
    const signIn = async (openid: string, phoneNumber: string): Promise<{ token: string, userId: string }> => {
      const res = await login(apps[0] as FastifyInstance, { ...await mint(openid, { phoneNumber }) })
      t.equal(res.statusCode, 200)
      return { token: res.json().token, userId: res.json().user.user_id }
    }
    const leaver = await signIn('reseal-leaver', '13512340001')
    const stayer = await signIn('reseal-stayer', '13512340002')

    // The operator puts a new key on top, and (too early) removes the old one.
    const newLine = newPiiKeyLine('k2')
    const instance = async (keys: string): Promise<FastifyInstance> => {
      const { app } = await build(t, { ...(apps[0] as FastifyInstance).loginConfig, piiKeys: parsePiiKeys(keys) })
      await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: 'login-api ready' })
      return app
    }
    const newOnly = await instance(newLine)
    const me = await newOnly.inject({ url: '/api/user/me', headers: auth(stayer.token) })
    t.equal(me.statusCode, 503, 'a record under the removed key cannot be read...')
    t.equal(me.json().error, 'store_unavailable', '...a clean 503, never a 500')
    const relogin = await login(newOnly, { code: (await mint('reseal-stayer')).code })
    t.equal(relogin.statusCode, 503, `its login too: ${relogin.body}`)
    const deleted = await newOnly.inject({ method: 'DELETE', url: '/api/user/me', headers: auth(leaver.token), payload: { confirm: true } })
    t.equal(deleted.statusCode, 204, 'but the user can still delete the account: deletion opens nothing')
    t.equal(await newOnly.users.getUser(leaver.userId), null)

    const env: Record<string, string> = {
      REDIS_URL: redis.url,
      PII_ENCRYPTION_KEY: `${newLine}\n${TEST_PII_KEYS}`,
      ...(server === undefined ? {} : { DATABASE_URL: server.url })
    }
    const before = await runTool('cli/pii-reseal.js', env, ['--check'])
    t.equal(before.code, 3, `--check: values under the old key remain (${before.stdout.trim()})`)
    const unreadable = await runTool('cli/pii-reseal.js', { ...env, PII_ENCRYPTION_KEY: newLine }, ['--check'])
    t.equal(unreadable.code, 3, '--check without the old line: still pending')
    t.match(unreadable.stderr, /key ids the file no longer holds \(test\)/, 'and it names the key id to put back')
    const first = await runTool('cli/pii-reseal.js', env)
    t.equal(first.code, 0, `${first.stdout}${first.stderr}`)
    t.match(first.stdout, /done: \d+ read, 0 current, [1-9]\d* sealed again/)
    const second = await runTool('cli/pii-reseal.js', env)
    t.match(second.stdout, /done: \d+ read, \d+ current, 0 sealed again/, 'a second run has nothing to do (idempotent)')
    t.equal((await runTool('cli/pii-reseal.js', env, ['--check'])).code, 0, '--check passes: the old line may go')

    t.equal((await newOnly.inject({ url: '/api/user/me', headers: auth(stayer.token) })).json().phone.purePhoneNumber, '13512340002',
      'with the new key alone, the record reads')
    if (server === undefined) {
      const c = createClient({ url: redis.url })
      c.on('error', () => {})
      await c.connect()
      const raw = await c.get(`wxlogin:user:${stayer.userId}`)
      await c.quit()
      t.match(JSON.parse(raw ?? '{}').phone, /^pii1:k2:/, 'sealed under the new key in Redis')
    } else {
      const rows = await (newOnly.database?.db)?.selectFrom('wxlogin_users').select('phone_sealed').where('user_id', '=', stayer.userId).execute()
      t.match(rows?.[0]?.phone_sealed, /^pii1:k2:/, 'sealed under the new key in SQL')
    }
  })
}
