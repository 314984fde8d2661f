import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { metricValue, waitFor } from '@wxlogin/testing'
import { sha256Hex } from '@wxlogin/service-kit'
import { APPID, build, login, retryKey, useNock } from './helper.js'
import { stack } from './stack.js'

// Mobile networks drop answers: a mini-program retries thirdLogin with the same code and phoneCode.

t.test('a retry on another instance gets the same login, with no WeChat call and no second bill', async t => {
  const { apps, sim, mint } = await stack(t, 2)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const { code, phoneCode } = await mint('retry-user')
  const key = retryKey()
  const first = await login(a, { code, phoneCode, nickname: 'First', retry_key: key })
  t.equal(first.statusCode, 200)
  const calls = { ...sim.state.calls }
  const retry = await login(b, { code, phoneCode, nickname: 'First', retry_key: key })
  t.equal(retry.statusCode, 200, 'not 40163: the code\'s exchange was kept')
  t.same({ ...retry.json(), token: 'x' }, { ...first.json(), token: 'x' }, 'the same answer: user, phone, is_new_user')
  t.not(retry.json().token, first.json().token, 'a session of its own')
  t.equal(sim.state.calls.jscode2session, calls.jscode2session, 'no second code2session')
  t.equal(sim.state.calls.getuserphonenumber, calls.getuserphonenumber, 'no second (billed) phone exchange')
  t.equal(await metricValue(b, 'login_code_reuses_total', { kind: 'login' }), 1)
  t.equal(await metricValue(b, 'login_code_reuses_total', { kind: 'phone' }), 1)
  const billed = await metricValue(a, 'login_phone_exchanges_total', { result: 'ok' }) + await metricValue(b, 'login_phone_exchanges_total', { result: 'ok' })
  t.equal(billed, 1, 'one billable exchange counted')
  for (const token of [first.json().token, retry.json().token]) {
    t.equal((await a.inject({ url: '/api/user/me', headers: { authorization: `Bearer ${token as string}` } })).statusCode, 200, 'both sessions work')
  }
})

t.test('two concurrent requests with the same codes on two instances: one WeChat call each, the second waits', async t => {
  const { apps, sim, mint } = await stack(t, 2)
  const { code, phoneCode } = await mint('twin-user')
  // Slow enough that the second request arrives while the first is still exchanging.
  sim.faults.add('jscode2session', { kind: 'latency', latencyMs: 300 }, 1)
  sim.faults.add('getuserphonenumber', { kind: 'latency', latencyMs: 300 }, 1)
  const key = retryKey()
  const [x, y] = await Promise.all((apps as FastifyInstance[]).map(async app => await login(app, { code, phoneCode, retry_key: key })))
  t.equal(x?.statusCode, 200)
  t.equal(y?.statusCode, 200, 'the second is answered, not refused with 40163')
  t.equal(x?.json().user.user_id, y?.json().user.user_id)
  t.equal(sim.state.calls.jscode2session, 1, 'one code2session')
  t.equal(sim.state.calls.getuserphonenumber, 1, 'one phone exchange')
  t.equal(y?.json().user.phone.purePhoneNumber, '13800138000')
})

t.test('a request refused by the per-user limit leaves its codes usable: the retry after Retry-After succeeds', async t => {
  const { apps, sim, mint } = await stack(t, 2, { login: { phoneRateLimitMax: 1, phoneRateLimitWindowSeconds: 1 } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  t.equal((await login(a, { ...await mint('limited') })).statusCode, 200, 'the window\'s one exchange')
  const { code, phoneCode } = await mint('limited')
  const key = retryKey()
  const refused = await login(a, { code, phoneCode, retry_key: key })
  t.equal(refused.statusCode, 429)
  t.ok(Number(refused.headers['retry-after']) >= 1)
  t.equal(sim.state.calls.getuserphonenumber, 1, 'the refused phoneCode never reached WeChat')
  const codeCalls = sim.state.calls.jscode2session
  // Once the window has passed, the same request (on another instance) goes through.
  const retried = await waitFor(async () => {
    const r = await login(b, { code, phoneCode, retry_key: key })
    return r.statusCode === 200 ? r : null
  }, { timeoutMs: 5000, intervalMs: 100, what: 'the retry after the window' })
  t.equal(retried.json().user.phone.purePhoneNumber, '13800138000')
  t.equal(sim.state.calls.jscode2session, codeCalls, 'the login code was not exchanged again')
  t.equal(sim.state.calls.getuserphonenumber, 2, 'the phone code once, now')
})

t.test('a code WeChat refused is refused again on a retry, without asking WeChat again', async t => {
  const { apps, sim } = await stack(t, 2)
  const first = await login(apps[0] as FastifyInstance, { code: 'never-issued' })
  t.equal(first.statusCode, 400)
  t.equal(first.json().error, 'invalid_code')
  const again = await login(apps[1] as FastifyInstance, { code: 'never-issued' })
  t.same(again.json(), first.json())
  t.equal(sim.state.calls.jscode2session, 1)
})

t.test('a failure a retry may not meet (WeChat busy) is not kept: the retry asks again', async t => {
  const { apps, sim, mint } = await stack(t, 1)
  const { code } = await mint('busy-retry')
  sim.faults.add('jscode2session', { kind: 'errcode', errcode: -1 }, 1)
  t.equal((await login(apps[0] as FastifyInstance, { code })).statusCode, 503)
  t.equal((await login(apps[0] as FastifyInstance, { code })).statusCode, 200, 'the code was not spent by the busy answer')
  t.equal(sim.state.calls.jscode2session, 2)
})

t.test('Redis killed while code2session is in flight: the login code\'s answer cannot be kept, so the login is a 503 and the phone code is not spent', async t => {
  const { apps, sim, redis, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const { code, phoneCode } = await mint('settle-user')
  // Long enough to kill Redis while WeChat holds the code; within the broker's 1 s timeout.
  sim.faults.add('jscode2session', { kind: 'latency', latencyMs: 600 }, 1)
  const pending = login(app, { code, phoneCode })
  await waitFor(() => sim.state.calls.jscode2session === 1, { what: 'code2session under way' })
  redis.signal('SIGKILL')
  const res = await pending
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'store_unavailable')
  t.equal(sim.state.calls.getuserphonenumber, 0, 'the (billed) phone exchange was never made')
})

t.test('the retry that creates the user keeps the kept answer bound to its retry_key: a further retry still logs in', async t => {
  // The first attempt exchanged the code and kept the answer, then its instance died (or the
  // broker failed the phone step) before the user was written. Seeded here as that instance left it.
  const nock = useNock(t)
  const { app } = await build(t)
  const key = retryKey()
  const record = { state: 'done' as const, value: { openid: 'openid-orphan', unionid: null }, owner: sha256Hex(key) }
  await app.exchanges.settle(app.loginKeys.exchange('login', APPID, 'orphan-code'), record, 300_000)
  const retry = await login(app, { code: 'orphan-code', retry_key: key })
  t.equal(retry.statusCode, 200, 'the retry logs in from the kept answer (no broker call)')
  t.equal(retry.json().is_new_user, true, 'and creates the user')
  const again = await login(app, { code: 'orphan-code', retry_key: key })
  t.equal(again.statusCode, 200, `a further retry (its answer lost too) logs in, not invalid_code: ${again.body}`)
  t.equal(again.json().user.user_id, retry.json().user.user_id)
  t.equal(again.json().is_new_user, true)
  t.equal((await login(app, { code: 'orphan-code', retry_key: retryKey() })).statusCode, 400, 'another retry_key is still refused')
  t.ok(nock.isDone())
})
