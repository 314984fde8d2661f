import t from 'tap'
import { createRequire } from 'node:module'
import type * as Client from '../src/index.js'

// The built bundle, as WeChat DevTools' 构建 npm takes it (CommonJS), not the TypeScript source.
const { createLoginClient, LoginError, phoneCodeFrom } = createRequire(import.meta.url)('../miniprogram_dist/index.js') as typeof Client
import { fakeWx, miniStack, phoneCode } from './stack.js'

// The client on the real stack, with a `wx` that does real HTTP: what a mini-program meets on a
// mobile network, and what the simulator (WeChat) saw of it.

const fast = { baseDelayMs: 50 }

t.test('first login with the phone button; a dropped answer is retried with the same codes: one code2session, one billed phone exchange', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-first')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  wx.dropAnswers(/thirdLogin$/, 1)
  const answer = await client.login({ phoneCode: await phoneCode(stack, 'o-first'), nickname: '小明' })
  t.equal(answer.user.phone.purePhoneNumber, '13800138000')
  t.equal(answer.user.nickname, '小明')
  t.equal(wx.logins, 1, 'one wx.login: the retry reused its code')
  t.equal(wx.requests.filter(p => p.endsWith('thirdLogin')).length, 2, 'the answer was lost once, then retried')
  const parents = wx.headers.map(h => h.traceparent ?? '')
  for (const p of parents) t.match(p, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'every request carries a W3C traceparent')
  t.equal(parents[0]?.split('-')[1], parents[1]?.split('-')[1], 'a login\'s retry is in the login\'s trace')
  t.not(parents[0]?.split('-')[2], parents[1]?.split('-')[2], 'as an attempt of its own')
  t.equal(stack.sim.state.calls.jscode2session, 1, 'WeChat saw the login code once')
  t.equal(stack.sim.state.calls.getuserphonenumber, 1, 'and the (billed) phone code once')
  const s = client.session()
  t.equal(s?.token, answer.token)
  t.ok((s?.expiresAt ?? 0) > Date.now() + 3600_000, 'expiresAt in epoch ms')
  const me = await client.request({ url: '/api/user/me' })
  t.equal(me.statusCode, 200)
  t.equal(me.data.user_id, answer.user.user_id)
})

t.test('ten concurrent requests after the session was revoked: one silent re-login, then each replayed once', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-busy')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  const first = await client.login()
  // Logged out everywhere from another device: this token is dead.
  await fetch(`${stack.loginUrl}/api/user/logout?all=true`, { method: 'POST', headers: { authorization: `Bearer ${first.token as string}` } })
  const answers = await Promise.all(Array.from({ length: 10 }, async () => await client.request({ url: '/api/user/me' })))
  t.ok(answers.every(a => a.statusCode === 200), 'all ten answered')
  t.equal(wx.requests.filter(p => p.endsWith('thirdLogin')).length, 2, 'exactly one re-login (after the first login)')
  t.not(client.session()?.token, first.token)
})

t.test('an invalid code gets one fresh wx.login and one more try; a second invalid one rejects', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-stale')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  wx.nextCodes.push('an-expired-code')
  const answer = await client.login()
  t.equal(answer.user.openid, 'o-stale')
  t.equal(wx.logins, 2, 'one fresh wx.login')
  wx.nextCodes.push('expired-1', 'expired-2')
  const err = await client.login().catch((e: InstanceType<typeof LoginError>) => e)
  t.match(err, { name: 'LoginError', code: 'invalid_code' })
  t.equal(err.traceId, wx.headers.at(-1)?.traceparent?.split('-')[1], 'the LoginError names the trace of the attempt it reports')
  t.equal(wx.logins, 4)
})

t.test('a short Retry-After is waited out and the same codes are sent again', async t => {
  const stack = await miniStack(t, { PHONE_RATE_LIMIT_MAX: '1', PHONE_RATE_LIMIT_WINDOW_SECONDS: '1' })
  const wx = fakeWx(stack, 'o-limited')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  await client.login({ phoneCode: await phoneCode(stack, 'o-limited') })
  const started = Date.now()
  const second = await client.login({ phoneCode: await phoneCode(stack, 'o-limited', '13900139000') })
  t.ok(Date.now() - started >= 900, `waited ${Date.now() - started} ms (Retry-After: 1)`)
  t.equal(second.user.phone.purePhoneNumber, '13900139000')
  t.equal(wx.logins, 2, 'no new wx.login for the wait')
  const patient = createLoginClient({ baseUrl: stack.loginUrl, api: fakeWx(stack, 'o-limited'), retry: { ...fast, maxRetryAfterMs: 0 } })
  await t.rejects(patient.login({ phoneCode: await phoneCode(stack, 'o-limited') }), { code: 'rate_limited' }, 'a Retry-After longer than allowed rejects')
})

t.test('bindPhone, logout, and errors as LoginError', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-later')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  await client.login()
  const user = await client.bindPhone(await phoneCode(stack, 'o-later', '13700137000'))
  t.equal(user.phone.purePhoneNumber, '13700137000')
  t.equal(client.session()?.user.phone.purePhoneNumber, '13700137000', 'the stored user follows')
  await t.rejects(client.bindPhone('not-a-phone-code'), { code: 'invalid_phone_code', statusCode: 400 })
  const token = client.session()?.token as string
  await client.logout()
  t.equal(client.session(), null)
  t.equal((await fetch(`${stack.loginUrl}/api/user/me`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'the server ended it: wx.request\'s content-type with no body is accepted')
  const offline = createLoginClient({ baseUrl: 'http://127.0.0.1:9', api: fakeWx(stack, 'o-x'), retry: { attempts: 2, baseDelayMs: 10 } })
  const err = await offline.login().catch((e: unknown) => e)
  t.ok(err instanceof LoginError)
  type LoginError = Client.LoginError
  t.equal((err as LoginError).code, 'network_error')
})

t.test('concurrent login() calls share one login', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-twice')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  const [a, b, c] = await Promise.all([client.login(), client.login(), client.login()])
  t.equal(a, b)
  t.equal(b, c)
  t.equal(wx.logins, 1)
})

t.test('phoneCodeFrom: the code, or why there is none', async t => {
  t.same(phoneCodeFrom({ detail: { code: 'c1', errMsg: 'getPhoneNumber:ok' } }), { code: 'c1' })
  t.match(phoneCodeFrom({ detail: { errMsg: 'getPhoneNumber:fail user deny' } }), { error: 'user_denied' }, 'iOS')
  t.match(phoneCodeFrom({ detail: { errMsg: 'getPhoneNumber:fail:user deny' } }), { error: 'user_denied' }, 'Android')
  t.match(phoneCodeFrom({ detail: { errMsg: 'getRealtimePhoneNumber:fail user deny' } }), { error: 'user_denied' }, 'the real-time variant')
  t.same(phoneCodeFrom({ detail: { errMsg: 'getPhoneNumber:fail no quota', errno: 1400001 } }), { error: 'no_quota', errno: 1400001, errMsg: 'getPhoneNumber:fail no quota' })
  t.match(phoneCodeFrom({ detail: { errMsg: 'getPhoneNumber:fail system error', errno: 102 } }), { error: 'failed', errno: 102 })
  t.match(phoneCodeFrom({}), { error: 'failed' })
})

t.test('needsPhone(): true without a session and without a verified phone; false once WeChat verified one', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-needs')
  const client = createLoginClient({ baseUrl: stack.loginUrl, api: wx, retry: fast })
  t.equal(client.needsPhone(), true, 'nobody logged in')
  const plain = await client.login()
  t.equal(plain.user.phone_verified_at, null)
  t.equal(client.needsPhone(), true, 'logged in, no phone')
  const user = await client.bindPhone(await phoneCode(stack, 'o-needs'))
  t.match(user.phone_verified_at, /^\d{4}-\d\d-\d\dT/, 'the answer says when WeChat verified it')
  t.equal(client.needsPhone(), false, 'verified: the button is not needed')
  await client.logout()
  t.equal(client.needsPhone(), true, 'logged out: unknown again')
  const back = await client.login()
  t.equal(back.user.phone_verified_at, user.phone_verified_at, 'a later login keeps when it was verified')
  t.equal(client.needsPhone(), false)
  t.equal(stack.sim.state.calls.getuserphonenumber, 1)
})
