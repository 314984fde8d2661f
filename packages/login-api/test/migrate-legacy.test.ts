// `pnpm migrate-legacy`: what releases before user_ids wrote, brought up to date once, so that no
// code path reads it any more (users `user:{appid}:{openid}`, sessions without a user_id, the
// unordered session index, the logout-everywhere markers for old sessions).
import t, { type Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { TEST_PII_KEYS } from '@wxlogin/testing'
import { login } from './helper.js'
import { stack } from './stack.js'
import { runTool } from './tools.js'
import { databaseConfig, DIALECTS } from './sql.js'

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const phone = { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86' }

async function redisClient (t: Test, url: string): Promise<ReturnType<typeof createClient>> {
  const c = createClient({ url })
  c.on('error', () => {})
  await c.connect()
  t.teardown(async () => { await c.quit() })
  return c
}

/** An old session: the identity only. Its token, and its key's hash. */
async function oldSession (c: ReturnType<typeof createClient>, appid: string, openid: string): Promise<{ token: string, hash: string }> {
  const token = randomBytes(32).toString('base64url')
  const hash = createHash('sha256').update(token).digest('hex')
  await c.set(`wxlogin:session:${hash}`, JSON.stringify({ appid, openid }), { EX: 3600 })
  return { token, hash }
}

t.test('Redis: old users adopted, old sessions linked or ended, old indexes folded; a second run does nothing', async t => {
  const { apps, mint, redis } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const appid = app.loginConfig.apps[0] as string
  const c = await redisClient(t, redis.url)
  const me = async (token: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ url: '/api/user/me', headers: auth(token) })

  // A user of the old layout, never logged in since: its phone in clear.
  await c.set(`wxlogin:user:${appid}:o-old`, JSON.stringify({ appid, openid: 'o-old', unionid: 'u-old', nickname: 'Old', head_pic: null, phone, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-02T00:00:00.000Z' }))
  const ofOld = await oldSession(c, appid, 'o-old')
  // A user who logged in under user_ids: the old record stayed behind, with the phone in clear.
  const current = await login(app, { code: (await mint('o-back')).code })
  await c.set(`wxlogin:user:${appid}:o-back`, JSON.stringify({ appid, openid: 'o-back', unionid: null, nickname: 'Back', head_pic: null, phone, created_at: 'x', updated_at: 'x' }))
  const ofBack = await oldSession(c, appid, 'o-back')
  // The unordered index an earlier release kept, naming the current session.
  const currentHash = createHash('sha256').update(current.json().token as string).digest('hex')
  const userId = current.json().user.user_id as string
  await c.del(`wxlogin:user-sessions-by-age:${userId}`)
  await c.sAdd(`wxlogin:user-sessions:${userId}`, currentHash)
  // A user whose old sessions logout everywhere ended by identity, and one who deleted the account.
  const ended = await login(app, { code: (await mint('o-ended')).code })
  t.equal(ended.statusCode, 200)
  const ofEnded = await oldSession(c, appid, 'o-ended')
  await c.set(`wxlogin:legacy-sessions-ended:${createHash('sha256').update(`${appid}\0o-ended`).digest('hex')}`, '1', { EX: 3600 })
  const ofGone = await oldSession(c, appid, 'o-gone')

  t.equal((await me(ofOld.token)).statusCode, 401, 'before the migration an old session opens nothing')
  const env = { REDIS_URL: redis.url, PII_ENCRYPTION_KEY: TEST_PII_KEYS }
  const first = await runTool('cli/migrate-legacy.js', env)
  t.equal(first.code, 0, `${first.stdout}${first.stderr}`)
  t.match(first.stdout, /done: 1 records adopted, 1 already adopted \(deleted\), 2 sessions linked, 2 sessions ended, 1 old indexes folded, 1 markers spent/)
  t.notMatch(`${first.stdout}${first.stderr}`, /13800138000|o-old/, 'the tool prints nothing personal')

  const old = await me(ofOld.token)
  t.equal(old.statusCode, 200, 'the old session now opens its user')
  t.match(old.json(), { openid: 'o-old', unionid: 'u-old', nickname: 'Old', phone: { purePhoneNumber: '13800138000' } })
  const adopted = old.json().user_id as string
  const stored = JSON.parse(await c.get(`wxlogin:user:${adopted}`) ?? '{}')
  t.equal(stored.created_at, '2026-01-01T00:00:00.000Z', 'the account keeps its age')
  t.match(stored.phone, /^pii1:test:/, 'the phone is sealed now')
  t.equal(await c.get('wxlogin:unionid:u-old'), adopted, 'its unionid links to it')
  t.equal(await c.exists(`wxlogin:user:${appid}:o-old`), 0, 'the old record is gone')
  t.equal(await c.exists(`wxlogin:user:${appid}:o-back`), 0, 'and the one left behind at a login, with its phone in clear')
  t.equal((await me(ofBack.token)).json().user_id, userId, 'an old session of a user made since: linked to that user')
  t.equal((await me(ofEnded.token)).statusCode, 401, 'one that logout everywhere ended stays ended')
  t.equal((await me(ofGone.token)).statusCode, 401, 'one whose account is gone is ended')
  t.same(await c.keys('wxlogin:legacy-sessions-ended:*'), [])
  t.same(await c.keys('wxlogin:user-sessions:*'), [])

  // Logout everywhere finds the sessions through the index by age: the linked and the folded.
  const re = await login(app, { code: (await mint('o-back')).code })
  t.equal((await app.inject({ method: 'POST', url: '/api/user/logout?all=true', headers: auth(re.json().token) })).statusCode, 204)
  t.equal((await me(current.json().token)).statusCode, 401, 'the session named only by the old index ends')
  t.equal((await me(ofBack.token)).statusCode, 401, 'and the linked old session')

  const second = await runTool('cli/migrate-legacy.js', env)
  t.match(second.stdout, /done: 0 records adopted, 0 already adopted \(deleted\), 0 sessions linked, 0 sessions ended, 0 old indexes folded, 0 markers spent/, 'idempotent')
})

t.test('without Redis configured the tool says what it needs', async t => {
  const r = await runTool('cli/migrate-legacy.js', { PII_ENCRYPTION_KEY: TEST_PII_KEYS })
  t.equal(r.code, 2, 'a configuration error, as every tool and the service')
  t.match(r.stderr, /REDIS_URL is required/)
})

const postgres = DIALECTS.find(d => d.name === 'PostgreSQL')
if (postgres !== undefined) {
  t.test('PostgreSQL: sessions get the user_id the database holds; old records are left to import-users', async t => {
    const server = await postgres.start(t)
    const { apps, mint, redis } = await stack(t, 1, { login: { database: databaseConfig(server) } })
    const app = apps[0] as FastifyInstance
    const appid = app.loginConfig.apps[0] as string
    const c = await redisClient(t, redis.url)
    const user = await login(app, { code: (await mint('sql-old')).code })
    const session = await oldSession(c, appid, 'sql-old')
    await c.set(`wxlogin:user:${appid}:sql-never`, JSON.stringify({ appid, openid: 'sql-never', unionid: null, nickname: 'N', head_pic: null, phone: null, created_at: 'x', updated_at: 'x' }))
    const r = await runTool('cli/migrate-legacy.js', { REDIS_URL: redis.url, DATABASE_URL: server.url, PII_ENCRYPTION_KEY: TEST_PII_KEYS })
    t.equal(r.code, 0, `${r.stdout}${r.stderr}`)
    t.match(r.stdout, /done: 0 records adopted, 0 already adopted \(deleted\), 1 sessions linked/)
    const me = await app.inject({ url: '/api/user/me', headers: auth(session.token) })
    t.equal(me.json().user_id, user.json().user.user_id)
    t.equal(await c.exists(`wxlogin:user:${appid}:sql-never`), 1, 'pnpm import-users copies old records into SQL')
  })
}
