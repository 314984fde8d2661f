import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { APPID, build, login, retryKey, testConfig } from './helper.js'
import { stack } from './stack.js'

t.test('the whole thirdLogin end to end: simulator, broker, login-api, Redis', async t => {
  const { apps, sim, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const { code, phoneCode } = await mint('e2e-user')
  const key = retryKey()
  const res = await login(app, { code, phoneCode, nickname: 'E2E', retry_key: key })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { is_new_user: true, user: { openid: 'e2e-user', nickname: 'E2E', phone: { purePhoneNumber: '13800138000', countryCode: '86' } }, phone_error: null })
  const calls = { ...sim.state.calls }
  const again = await login(app, { code, phoneCode, retry_key: key })
  t.equal(again.statusCode, 200, 'a retry of the same codes (its answer was lost) logs in again')
  t.match(again.json(), { is_new_user: true, user: { user_id: res.json().user.user_id, phone: { purePhoneNumber: '13800138000' } }, phone_error: null })
  t.not(again.json().token, res.json().token, 'with a session of its own')
  t.equal(sim.state.calls.jscode2session, calls.jscode2session, 'without a second code2session')
  t.equal(sim.state.calls.getuserphonenumber, calls.getuserphonenumber, 'nor a second (billed) phone exchange')
})

t.test('the 6th phone exchange of one openid over 2 instances is 429; another openid passes', async t => {
  const { apps, sim, mint } = await stack(t, 2)
  for (let i = 0; i < 5; i++) {
    const { code, phoneCode } = await mint('limited-user')
    const res = await login(apps[i % 2] as FastifyInstance, { code, phoneCode })
    t.equal(res.statusCode, 200, `exchange ${i + 1}`)
    t.equal(res.json().phone_error, null)
  }
  const callsBefore = sim.state.calls.getuserphonenumber
  const { code, phoneCode } = await mint('limited-user')
  const sixth = await login(apps[1] as FastifyInstance, { code, phoneCode })
  t.equal(sixth.statusCode, 429)
  t.equal(sixth.json().error, 'rate_limited')
  t.ok(Number(sixth.headers['retry-after']) >= 1, 'Retry-After')
  t.equal(sixth.headers['x-ratelimit-remaining'], '0')
  t.equal(sim.state.calls.getuserphonenumber, callsBefore, 'WeChat not called')
  const other = await mint('other-user')
  t.equal((await login(apps[0] as FastifyInstance, other)).statusCode, 200)
})

t.test('users are not duplicated, sessions work across instances, logout revokes everywhere', async t => {
  const { apps, mint } = await stack(t, 2)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const first = await login(a, { code: (await mint('shared-user')).code, nickname: 'One' })
  const second = await login(b, { code: (await mint('shared-user')).code, head_pic: 'https://img.example/p.png' })
  t.equal(first.json().is_new_user, true)
  t.equal(second.json().is_new_user, false)
  t.same(second.json().user, { user_id: first.json().user.user_id, appid: APPID, openid: 'shared-user', unionid: null, nickname: 'One', head_pic: 'https://img.example/p.png', phone: null, phone_verified_at: null })
  const auth = { authorization: `Bearer ${first.json().token as string}` }
  const me = await b.inject({ method: 'GET', url: '/api/user/me', headers: auth })
  t.equal(me.statusCode, 200, 'a session from A works on B')
  t.equal(me.json().head_pic, 'https://img.example/p.png')
  t.equal((await b.inject({ method: 'POST', url: '/api/user/logout', headers: auth })).statusCode, 204)
  t.equal((await a.inject({ method: 'GET', url: '/api/user/me', headers: auth })).statusCode, 401, 'revoked on A too')
})

t.test('concurrent first logins of one openid: exactly one is new', async t => {
  const { apps, mint } = await stack(t, 2)
  const codes = await Promise.all(Array.from({ length: 10 }, async () => (await mint('racing-user')).code))
  const results = await Promise.all(codes.map(async (code, i) => await login(apps[i % 2] as FastifyInstance, { code })))
  t.ok(results.every(r => r.statusCode === 200))
  t.equal(results.filter(r => r.json().is_new_user === true).length, 1)
})

t.test('Redis down: 503 store_unavailable, not a crash; back when Redis returns', async t => {
  const redis = await startRedisServer(t)
  const { app } = await build(t, testConfig({ redis: redis.connection }))
  await waitFor(() => app.redis?.ok(), { what: 'connected' })
  await redis.stop()
  await waitFor(() => app.redis?.ok() === false, { what: 'disconnected' })
  const res = await app.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: 'Bearer abcdefghijklmnopqrstuvwxyz012345' } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'store_unavailable')
  t.equal((await app.inject('/readyz')).statusCode, 503)
  await redis.start()
  await waitFor(() => app.redis?.ok(), { what: 'reconnected', timeoutMs: 15_000 })
  const after = await app.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: 'Bearer abcdefghijklmnopqrstuvwxyz012345' } })
  t.equal(after.statusCode, 401)
})

t.test('timeouts in order: WeChat at 4 s, the broker gives up before the login-api does, and the code is not spent', async t => {
  // The defaults: the login-api waits 3 s for the broker; the broker would give WeChat 5 s and
  // retry for 8 s. The deadline the login-api sends bounds all of it.
  const { apps, sim, mint } = await stack(t, 1, { login: { brokerTimeoutMs: 3000 }, brokerTimeouts: { upstreamTimeoutMs: 5000, retryBudgetMs: 8000 } })
  const app = apps[0] as FastifyInstance
  const { code } = await mint('slow-user')
  await sim.app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/faults`, payload: { api: 'jscode2session', kind: 'latency', latency_ms: 4000, count: 1 } })
  const started = Date.now()
  const res = await login(app, { code })
  const elapsed = Date.now() - started
  t.equal(res.statusCode, 503)
  t.same(Object.keys(res.json()).sort(), ['error', 'message'], 'one clear error')
  t.equal(res.json().error, 'upstream_unavailable')
  t.ok(elapsed < 3000, `answered in ${elapsed} ms: the broker's answer, before the login-api's own 3 s timeout`)
  await waitFor(() => sim.state.abandoned.jscode2session === 1, { what: 'the simulator to see the broker hang up' })
  t.equal(sim.state.calls.jscode2session, 1, 'one call, not retried')
  const retry = await login(app, { code })
  t.equal(retry.statusCode, 200, 'nothing spent the code after the caller gave up: the retry logs in')
  t.equal(retry.json().user.openid, 'slow-user')
})
