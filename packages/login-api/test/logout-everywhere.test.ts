// What logout everywhere and account deletion promise (docs/security.md), held in every store
// and session format: nothing kept for a user answers after them, and nothing names the user.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createHash, randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { startMariadbServer, startPostgresServer, waitFor, type SqlServer } from '@wxlogin/testing'
import { jwtConfig, login, retryKey, signingKeysText } from './helper.js'
import { stack, type StackOptions } from './stack.js'
import { databaseConfig } from './sql.js'

type Store = 'Redis' | 'PostgreSQL' | 'MariaDB' | 'memory'

// One server of each SQL dialect for the whole file; each test's users have openids of their own.
const servers = new Map<Store, Promise<SqlServer>>()
function sqlServer (store: 'PostgreSQL' | 'MariaDB'): Promise<SqlServer> {
  let s = servers.get(store)
  if (s === undefined) {
    s = store === 'PostgreSQL' ? startPostgresServer(t) : startMariadbServer(t)
    servers.set(store, s)
  }
  return s
}

async function storeOptions (store: Store): Promise<StackOptions> {
  if (store === 'memory') return { memory: true }
  if (store === 'Redis') return {}
  return { login: { database: databaseConfig(await sqlServer(store)) } }
}

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const bindPhone = async (app: FastifyInstance, token: string, phoneCode: string): Promise<{ statusCode: number, body: string }> =>
  await app.inject({ method: 'POST', url: '/api/user/phone', headers: auth(token), payload: { phoneCode } })
const deleteMe = async (app: FastifyInstance, token: string): Promise<number> =>
  (await app.inject({ method: 'DELETE', url: '/api/user/me', headers: auth(token), payload: { confirm: true } })).statusCode
const logoutAll = async (app: FastifyInstance, token: string): Promise<number> =>
  (await app.inject({ method: 'POST', url: '/api/user/logout?all=true', headers: auth(token) })).statusCode

async function redisKeys (url: string): Promise<string[]> {
  const c = createClient({ url })
  c.on('error', () => {})
  await c.connect()
  const keys: string[] = []
  for await (const batch of c.scanIterator()) keys.push(...batch)
  await c.quit()
  return keys
}

for (const store of ['Redis', 'PostgreSQL', 'MariaDB', 'memory'] as const) {
  t.test(`${store}: a phone answer kept for POST /api/user/phone goes to nobody after deletion or logout everywhere`, async t => {
    const { apps, mint, sim } = await stack(t, 1, await storeOptions(store))
    const app = apps[0] as FastifyInstance
    for (const end of ['deletion', 'logout everywhere'] as const) {
      const openid = `phone-keeper-${end === 'deletion' ? 'd' : 'l'}`
      const first = await login(app, { code: (await mint(openid)).code, retry_key: retryKey() })
      const { phoneCode } = await mint(openid, { phoneNumber: '13911112222' })
      const bound = await bindPhone(app, first.json().token, phoneCode)
      t.equal(bound.statusCode, 200, `${end}: the number bound`)
      t.equal(JSON.parse(bound.body).phone.purePhoneNumber, '13911112222')
      t.equal(end === 'deletion' ? await deleteMe(app, first.json().token) : await logoutAll(app, first.json().token), 204)

      // The same WeChat user, now a new account (or the same one, logged in anew), presents the used code.
      const again = await login(app, { code: (await mint(openid)).code, retry_key: retryKey() })
      t.equal(again.statusCode, 200)
      const calls = sim.state.calls.getuserphonenumber
      const replay = await bindPhone(app, again.json().token, phoneCode)
      t.equal(replay.statusCode, 400, `${end}: the kept answer is taken back: ${replay.body}`)
      t.equal(JSON.parse(replay.body).error, 'invalid_phone_code')
      t.notMatch(replay.body, /13911112222/, 'the number is not in the answer')
      t.equal(sim.state.calls.getuserphonenumber, calls, 'WeChat was not asked (the code is used)')
    }
  })

  if (store === 'memory') continue

  t.test(`${store}: after a deletion no Redis key names the user's openid or user_id`, async t => {
    const { apps, mint, redis } = await stack(t, 1, await storeOptions(store))
    const app = apps[0] as FastifyInstance
    const openid = `leaver-${randomBytes(4).toString('hex')}`
    const first = await login(app, { ...await mint(openid, { phoneNumber: '13622223333' }), retry_key: retryKey(), nickname: 'Leaver' })
    t.equal(first.statusCode, 200)
    const userId = first.json().user.user_id as string
    t.equal((await bindPhone(app, first.json().token, (await mint(openid, { phoneNumber: '13622224444' })).phoneCode)).statusCode, 200)
    const second = await login(app, { code: (await mint(openid)).code })
    t.equal(await logoutAll(app, second.json().token), 204)
    const third = await login(app, { code: (await mint(openid)).code })
    const before = await redisKeys(redis.url)
    t.ok(before.some(k => k.includes(openid)), `keys name the openid while the user exists: ${before.filter(k => k.includes(openid)).join(', ')}`)
    t.equal(await deleteMe(app, third.json().token), 204)
    const left = (await redisKeys(redis.url)).filter(k => k.includes(openid) || k.includes(userId))
    t.same(left, [], `no key names the user: ${left.join(', ')}`)
  })

  t.test(`${store}: a session from before user_ids, not migrated, opens nothing and creates nothing`, async t => {
    const { apps, mint, redis } = await stack(t, 1, await storeOptions(store))
    const app = apps[0] as FastifyInstance
    const c = createClient({ url: redis.url })
    c.on('error', () => {})
    await c.connect()
    t.teardown(async () => { await c.quit() })
    // What the release before user_ids stored: the session names the identity only.
    const legacy = async (openid: string): Promise<string> => {
      const token = randomBytes(32).toString('base64url')
      const hash = createHash('sha256').update(token).digest('hex')
      await c.set(`wxlogin:session:${hash}`, JSON.stringify({ appid: apps[0]?.loginConfig.apps[0], openid }), { EX: 3600 })
      return token
    }
    const me = async (token: string): Promise<number> => (await app.inject({ url: '/api/user/me', headers: auth(token) })).statusCode
    await login(app, { code: (await mint('legacy-holder')).code })
    t.equal(await me(await legacy('legacy-holder')), 401, 'of a user that exists: refused until `pnpm migrate-legacy` links it')
    t.equal(await me(await legacy('never-known')), 401, 'of nobody: refused...')
    t.equal(await app.users.userIdOf({ appid: app.loginConfig.apps[0] as string, openid: 'never-known' }), null, '...and nothing created')
  })
}

for (const store of ['PostgreSQL', 'MariaDB'] as const) {
  t.test(`${store}: a login answer kept before its commit failed is taken back by logout everywhere`, async t => {
    const server = await sqlServer(store)
    const { apps, mint } = await stack(t, 1, { login: { database: databaseConfig(server, { statementTimeoutMs: 1000 }) } })
    const app = apps[0] as FastifyInstance
    const openid = `half-committed-${store}`
    const session = await login(app, { code: (await mint(openid)).code })
    t.equal(session.statusCode, 200)
    const { code } = await mint(openid)
    const key = retryKey()
    server.signal('SIGSTOP')
    let failed
    try {
      failed = await login(app, { code, retry_key: key })
    } finally {
      server.signal('SIGCONT')
    }
    t.equal(failed.statusCode, 503, 'the commit failed after WeChat answered and the answer was kept')
    await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: 'the database back', timeoutMs: 20_000 })
    t.equal(await logoutAll(app, session.json().token), 204)
    const retry = await login(app, { code, retry_key: key })
    t.equal(retry.statusCode, 400, `the kept answer no longer opens a session: ${retry.body}`)
  })
}

for (const store of ['Redis', 'memory'] as const) {
  t.test(`${store}, signed sessions: a family refreshed past SESSION_TTL_SECONDS still ends with logout everywhere and deletion`, async t => {
    const ttl = 2
    const { apps, mint } = await stack(t, 1, {
      ...await storeOptions(store),
      login: { sessionTtlSeconds: ttl, jwt: jwtConfig(signingKeysText({ kid: 'k' })).jwt }
    })
    const app = apps[0] as FastifyInstance
    const refresh = async (token: string): Promise<{ statusCode: number, json: () => any }> =>
      await app.inject({ method: 'POST', url: '/api/user/token/refresh', payload: { refresh_token: token } })
    const gateway = async (token: string): Promise<number> =>
      (await app.inject({ url: '/api/user/session', headers: auth(token) })).statusCode

    for (const end of ['logout everywhere', 'deletion'] as const) {
      const openid = `busy-refresher-${end === 'deletion' ? 'd' : 'l'}`
      const first = (await login(app, { code: (await mint(openid)).code })).json()
      const loggedInAt = Date.now()
      let pair = { token: first.token as string, refresh_token: first.refresh_token as string }
      // Refreshed every 400 ms until well past the login's own TTL: the family stays alive.
      await waitFor(async () => {
        const r = await refresh(pair.refresh_token)
        if (r.statusCode !== 200) throw new Error(`refresh answered ${r.statusCode}`)
        pair = r.json()
        return Date.now() > loggedInAt + ttl * 1000 + 1500 ? true : await new Promise(resolve => setTimeout(() => resolve(null), 400))
      }, { what: 'refreshes past the TTL', timeoutMs: 15_000 })
      t.equal(await gateway(pair.token), 200, `${end}: the family lives on, refreshed`)

      const other = (await login(app, { code: (await mint(openid)).code })).json()
      t.equal(end === 'deletion' ? await deleteMe(app, other.token) : await logoutAll(app, other.token), 204)
      t.equal((await refresh(pair.refresh_token)).statusCode, 401, `${end}: the busy device's refresh is refused`)
      t.equal(await gateway(pair.token), 401, `${end}: its access token fails the gateway check`)
    }
  })

  t.test(`${store}, signed sessions: SESSIONS_PER_USER_MAX counts the families that exist, not those logged out`, async t => {
    const { apps, mint } = await stack(t, 1, {
      ...await storeOptions(store),
      login: { sessionsPerUserMax: 2, jwt: jwtConfig(signingKeysText({ kid: 'k' })).jwt }
    })
    const app = apps[0] as FastifyInstance
    const signIn = async (): Promise<any> => (await login(app, { code: (await mint('capped')).code })).json()
    const gateway = async (token: string): Promise<number> =>
      (await app.inject({ url: '/api/user/session', headers: auth(token) })).statusCode
    const one = await signIn()
    const two = await signIn()
    t.equal((await app.inject({ method: 'POST', url: '/api/user/logout', headers: auth(two.token) })).statusCode, 204)
    const three = await signIn()
    t.equal(await gateway(one.token), 200, 'two live families: the first is not ended for the one logged out')
    t.equal(await gateway(three.token), 200)
    const four = await signIn()
    t.equal(await gateway(one.token), 401, 'a third live one ends the oldest')
    t.equal(await gateway(four.token), 200)
  })
}
