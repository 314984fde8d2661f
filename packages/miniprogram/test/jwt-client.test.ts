import t from 'tap'
import { createRequire } from 'node:module'
import { generateKeyPairSync } from 'node:crypto'
import type * as Client from '../src/index.js'
import { fakeWx, miniStack } from './stack.js'

// The built bundle against a login-api with SESSION_FORMAT=jwt: the access token refreshed before
// it expires and on a 401, one refresh shared, a lost refresh answered again, a refused one
// followed by one silent login.
const { createLoginClient } = createRequire(import.meta.url)('../miniprogram_dist/index.js') as typeof Client

const keys = JSON.stringify({ keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'mini', alg: 'ES256' }] })
const jwtEnv = (ttl: number): Record<string, string> => ({ SESSION_FORMAT: 'jwt', SESSION_SIGNING_KEYS: keys, ACCESS_TOKEN_TTL_SECONDS: String(ttl) })
const fast = { baseDelayMs: 50 }
const count = (paths: string[], end: string): number => paths.filter(p => p.endsWith(end)).length

t.test('an access token close to expiry is refreshed before the request; ten requests share one refresh', async t => {
  const stack = await miniStack(t, jwtEnv(30))
  const wx = fakeWx(stack, 'o-ahead')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  const first = await client.login()
  t.type(first.refresh_token, 'string')
  t.equal(client.session()?.refreshToken, first.refresh_token, 'the refresh token is kept with the session')
  // 30 s of life is inside the client's 60 s margin: it refreshes first.
  const answers = await Promise.all(Array.from({ length: 10 }, async () => await client.request({ url: '/api/user/me' })))
  t.ok(answers.every(a => a.statusCode === 200))
  t.equal(count(wx.requests, '/token/refresh'), 1, 'one refresh for all ten')
  t.equal(wx.requests.indexOf('/api/user/token/refresh') < wx.requests.indexOf('/api/user/me'), true, 'before the requests')
  t.not(client.session()?.token, first.token)
  t.not(client.session()?.refreshToken, first.refresh_token, 'the new refresh token kept')
  t.equal(client.session()?.user.user_id, first.user.user_id, 'the user kept')
  t.equal(wx.logins, 1, 'no new wx.login')
})

t.test('a 401 is answered with a refresh (no wx.login); a lost refresh answer is sent again and still works', async t => {
  const stack = await miniStack(t, jwtEnv(900))
  const wx = fakeWx(stack, 'o-401')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  await client.login()
  // An access token the server no longer takes (a clock that ran ahead, a key removed).
  const s = client.session()
  wx.storage.set('wxlogin:session', { ...s, token: 'eyJhbGciOiJFUzI1NiJ9.e30.AAAA' })
  wx.dropAnswers(/token\/refresh$/, 1)
  const me = await client.request({ url: '/api/user/me' })
  t.equal(me.statusCode, 200)
  t.equal(count(wx.requests, '/token/refresh'), 2, 'the refresh was sent twice: its first answer was lost')
  t.equal(wx.logins, 1, 'and no wx.login was needed')
  t.equal((await client.request({ url: '/api/user/me' })).statusCode, 200, 'the successor it kept works')
})

t.test('a refused refresh (logged out everywhere) ends in one silent login', async t => {
  const stack = await miniStack(t, jwtEnv(900))
  const wx = fakeWx(stack, 'o-out')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  const first = await client.login()
  await fetch(`${stack.loginUrl}/api/user/logout?all=true`, { method: 'POST', headers: { authorization: `Bearer ${first.token as string}` } })
  const me = await client.request({ url: '/api/user/me' })
  t.equal(me.statusCode, 200)
  t.equal(wx.logins, 2, 'one silent login after the refresh was refused')
  t.not(client.session()?.refreshToken, first.refresh_token)
  await client.logout()
  t.equal(client.session(), null)
})
