import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { metricValue } from '@wxlogin/testing'
import { login, retryKey } from './helper.js'
import { stack } from './stack.js'
import { RETRY_SESSIONS_PER_CODE } from '../src/login/login.js'

// A used login code is worth nothing to whoever reads it in a log: the kept answer that makes
// retries safe goes only to the request that holds the first attempt's retry_key.

const me = async (app: FastifyInstance, token: string): Promise<{ statusCode: number, json: () => any }> =>
  await app.inject({ url: '/api/user/me', headers: { authorization: `Bearer ${token}` } })

t.test('a used code replayed without the retry_key, or with another one, is invalid_code: no session, no profile change, no phone limit spent', async t => {
  const { apps, sim, mint } = await stack(t, 2, { login: { phoneRateLimitMax: 2 } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const { code, phoneCode } = await mint('victim')
  const key = retryKey()
  const first = await login(a, { code, phoneCode, nickname: 'Victim', head_pic: 'https://img.example/v.png', retry_key: key })
  t.equal(first.statusCode, 200)
  const calls = { ...sim.state.calls }
  const forged = await mint('someone-else')
  for (const body of [
    { code, nickname: 'Attacker', head_pic: 'https://evil.example/a.png' },
    { code, retry_key: retryKey(), nickname: 'Attacker' },
    { code, phoneCode: forged.phoneCode, nickname: 'Attacker' },
    { code, phoneCode: forged.phoneCode, retry_key: retryKey() },
    { code, phoneCode: forged.phoneCode, retry_key: key.toUpperCase() === key ? key.toLowerCase() : key.toUpperCase() }
  ]) {
    const res = await login(b, body)
    t.equal(res.statusCode, 400, `refused: ${Object.keys(body).join(', ')}`)
    t.match(res.json(), { error: 'invalid_code', wechat_errcode: 40163 })
    t.notMatch(JSON.stringify(res.json()), /13800138000|Victim|openid/, 'nothing of the victim in the answer')
  }
  t.same(sim.state.calls, calls, 'no WeChat call for any replay')
  const profile = await me(a, first.json().token as string)
  t.match(profile.json(), { nickname: 'Victim', head_pic: 'https://img.example/v.png' }, 'the profile is the victim\'s')
  t.equal(await metricValue(b, 'login_code_replays_refused_total'), 5)
  // The victim's own phone limit (2) is untouched by the forged phone codes.
  const own = await mint('victim')
  const bind = await a.inject({ method: 'POST', url: '/api/user/phone', headers: { authorization: `Bearer ${first.json().token as string}` }, payload: { phoneCode: own.phoneCode } })
  t.equal(bind.statusCode, 200, 'the victim can still bind a phone')
})

t.test('the same retry_key gets the kept answer, but a code opens at most a few sessions', async t => {
  const { apps, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const { code } = await mint('flaky')
  const key = retryKey()
  const answers = []
  for (let i = 0; i < RETRY_SESSIONS_PER_CODE + 5; i++) answers.push(await login(app, { code, retry_key: key }))
  const ok = answers.filter(r => r.statusCode === 200)
  t.equal(ok.length, RETRY_SESSIONS_PER_CODE, `${RETRY_SESSIONS_PER_CODE} sessions, then no more`)
  t.ok(answers.slice(RETRY_SESSIONS_PER_CODE).every(r => r.statusCode === 400 && r.json().error === 'invalid_code'))
  t.equal(new Set(ok.map(r => r.json().user.user_id)).size, 1)
})

t.test('logout everywhere takes back the kept answer: the owner\'s own retry key no longer logs in', async t => {
  const { apps, sim, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const { code, phoneCode } = await mint('careful')
  const key = retryKey()
  const first = await login(app, { code, phoneCode, retry_key: key })
  t.equal(first.statusCode, 200)
  const out = await app.inject({ method: 'POST', url: '/api/user/logout?all=true', headers: { authorization: `Bearer ${first.json().token as string}` } })
  t.equal(out.statusCode, 204)
  const calls = { ...sim.state.calls }
  const again = await login(app, { code, phoneCode, retry_key: key })
  t.equal(again.statusCode, 400)
  t.equal(again.json().error, 'invalid_code')
  t.same(sim.state.calls, calls, 'answered without WeChat')
})

t.test('concurrent duplicates: the same retry_key waits for the first answer; a request without it is refused', async t => {
  const { apps, sim, mint } = await stack(t, 2)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const { code } = await mint('twins')
  sim.faults.add('jscode2session', { kind: 'latency', latencyMs: 300 }, 1)
  const key = retryKey()
  const [x, y, z] = await Promise.all([login(a, { code, retry_key: key }), login(b, { code, retry_key: key }), login(b, { code })])
  t.equal(x.statusCode, 200)
  t.equal(y.statusCode, 200)
  t.equal(z.statusCode, 400, 'the stranger waited for the answer, then was refused')
  t.equal(sim.state.calls.jscode2session, 1)
})

t.test('LOGIN_RETRY_WITHOUT_KEY=true keeps the old behaviour for clients without retry_key, never for a code first used with one', async t => {
  const { apps, mint } = await stack(t, 1, { login: { retryWithoutKey: true } })
  const app = apps[0] as FastifyInstance
  const old = await mint('old-client')
  t.equal((await login(app, { code: old.code })).statusCode, 200)
  t.equal((await login(app, { code: old.code })).statusCode, 200, 'an old client\'s retry without a key')
  t.equal((await login(app, { code: old.code, retry_key: retryKey() })).statusCode, 400, 'a key where the first had none')
  const keyed = await mint('new-client')
  t.equal((await login(app, { code: keyed.code, retry_key: retryKey() })).statusCode, 200)
  t.equal((await login(app, { code: keyed.code })).statusCode, 400, 'a code first used with a key needs it')
})

t.test('retry_key must carry 128 random bits: short or malformed keys are invalid_body', async t => {
  const { apps, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const { code } = await mint('picky')
  for (const bad of ['abc', 'a'.repeat(31), '0123456789abcdef0123456789abcde', 'has space in it 0123456789abcdef', 'x'.repeat(129), '+/+/+/+/+/+/+/+/+/+/+/+/']) {
    const res = await login(app, { code, retry_key: bad })
    t.equal(res.statusCode, 400, JSON.stringify(bad))
    t.equal(res.json().error, 'invalid_body')
  }
  t.equal((await login(app, { code, retry_key: 'Zm9vYmFyYmF6cXV4cXV1eHh5' })).statusCode, 200, '24 base64url characters')
})
