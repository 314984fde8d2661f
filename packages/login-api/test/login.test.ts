import t from 'tap'
import { APPID, BROKER, BROKER_TOKEN, broker, build, login, metricValue, testConfig, useNock } from './helper.js'

t.test('login without phoneCode: a session, a new user, then the same user again', async t => {
  const nock = useNock(t)
  broker.session(nock, 'code-1', 'openid-1', 'union-1')
  broker.session(nock, 'code-2', 'openid-1', 'union-1')
  const { app } = await build(t)
  const first = await login(app, { code: 'code-1', nickname: 'Ann', head_pic: 'https://img.example/a.png', extra: 'ignored' })
  t.equal(first.statusCode, 200)
  const body = first.json()
  t.match(body, {
    token: /^[A-Za-z0-9_-]{43}$/,
    expires_in: 604800,
    is_new_user: true,
    user: { openid: 'openid-1', unionid: 'union-1', nickname: 'Ann', head_pic: 'https://img.example/a.png', phone: null },
    phone_error: null
  })
  t.equal(first.headers['cache-control'], 'no-store')
  const second = await login(app, { code: 'code-2' })
  t.equal(second.json().is_new_user, false)
  t.equal(second.json().user.nickname, 'Ann', 'an absent nickname keeps the stored one')
  t.not(second.json().token, body.token)
  const me = await app.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: `Bearer ${body.token}` } })
  t.same(me.json(), body.user)
  t.equal(await metricValue(app, 'login_requests_total', { result: 'ok' }), 2)
})

t.test('login with phoneCode: the number from the broker (openid and a retry key sent), phone stored', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-2')
  const phone = broker.phone(nock, 'phone-code', 'openid-2').once().reply(200, broker.phoneInfo('13912345678'))
  const { app, logs } = await build(t)
  const res = await login(app, { code: 'c', phoneCode: 'phone-code' })
  t.equal(res.statusCode, 200)
  t.same(res.json().user.phone, { phoneNumber: '13912345678', purePhoneNumber: '13912345678', countryCode: '86' })
  t.equal(res.json().phone_error, null)
  t.ok(phone.isDone())
  t.equal(await metricValue(app, 'login_phone_exchanges_total', { result: 'ok' }), 1)
  const text = logs.text()
  t.notOk(text.includes('13912345678'), 'the full phone number is not logged')
  t.ok(text.includes('139****5678'), 'a masked one is')
  t.notOk(text.includes(res.json().token), 'nor the session token')
  t.notOk(text.includes(BROKER_TOKEN), 'nor the broker token')
})

t.test('form-encoded body', async t => {
  const nock = useNock(t)
  broker.session(nock, 'form-code', 'openid-3')
  const { app } = await build(t)
  const res = await login(app, 'code=form-code&nickname=Bo&phoneCode=', { 'content-type': 'application/x-www-form-urlencoded' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().user.nickname, 'Bo')
  t.equal(res.json().user.phone, null, 'an empty phoneCode means none')
})

for (const errcode of [40029, 40163]) {
  t.test(`phoneCode errcode ${errcode}: logged in, phone kept, phone_error says why`, async t => {
    const nock = useNock(t)
    broker.session(nock, 'a', 'openid-4')
    broker.phone(nock, 'good', 'openid-4').reply(200, broker.phoneInfo('13800000001'))
    broker.session(nock, 'b', 'openid-4')
    broker.phone(nock, 'bad', 'openid-4').once().reply(400, broker.phoneError('invalid_phone_code', errcode))
    const { app } = await build(t)
    t.equal((await login(app, { code: 'a', phoneCode: 'good' })).statusCode, 200)
    const res = await login(app, { code: 'b', phoneCode: 'bad' })
    t.equal(res.statusCode, 200)
    t.equal(res.json().user.phone.purePhoneNumber, '13800000001', 'the stored phone stays')
    t.match(res.json().phone_error, { error: 'invalid_phone_code', message: String, wechat_errcode: errcode })
    t.equal(await metricValue(app, 'login_phone_exchanges_total', { result: 'invalid_phone_code' }), 1)
  })
}

t.test('WeChat 45011 on the phone (the broker\'s 429): 429 rate_limited with Retry-After', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-5')
  broker.phone(nock, 'p', 'openid-5').once().reply(429, broker.phoneError('rate_limited', 45011))
  const { app } = await build(t)
  const res = await login(app, { code: 'c', phoneCode: 'p' })
  t.equal(res.statusCode, 429)
  t.match(res.json(), { error: 'rate_limited', wechat_errcode: 45011 })
  t.equal(res.headers['retry-after'], '60')
  t.equal(await metricValue(app, 'login_rate_limited_total', { scope: 'user' }), 1)
})

t.test('WeChat -1 on the phone (the broker\'s 503): not retried; logged in with phone_error', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-6')
  const scope = broker.phone(nock, 'p', 'openid-6').once().reply(503, broker.phoneError('upstream_unavailable', -1))
  const { app } = await build(t)
  const res = await login(app, { code: 'c', phoneCode: 'p' })
  t.equal(res.statusCode, 200)
  t.match(res.json().phone_error, { error: 'upstream_unavailable', wechat_errcode: -1 })
  t.ok(scope.isDone(), 'asked once')
  t.ok(nock.isDone(), 'every mock used, none more')
})

t.test('a retried phone exchange sends the broker the same retry key (another instance finds the kept number)', async t => {
  const nock = useNock(t)
  const keys: unknown[] = []
  broker.session(nock, 'c1', 'openid-7')
  broker.session(nock, 'c2', 'openid-7')
  nock(BROKER).post(`/v1/apps/${APPID}/phone-number`, (b: Record<string, unknown>) => { keys.push(b.retry_key_sha256); return true })
    .once().reply(503, broker.phoneError('upstream_unavailable'))
  nock(BROKER).post(`/v1/apps/${APPID}/phone-number`, (b: Record<string, unknown>) => { keys.push(b.retry_key_sha256); return true })
    .once().reply(200, broker.phoneInfo())
  const { app } = await build(t)
  t.equal((await login(app, { code: 'c1', phoneCode: 'p' })).json().phone_error.error, 'upstream_unavailable')
  const other = await build(t)
  t.equal((await login(other.app, { code: 'c2', phoneCode: 'p' })).json().user.phone.purePhoneNumber, '13800138000')
  t.equal(keys.length, 2)
  t.equal(keys[0], keys[1], 'derived from the app, openid and code alone: the same on every instance')
})

t.test('an invalid login code: 400 invalid_code', async t => {
  const nock = useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).reply(400, { error: 'invalid_code', message: 'x', wechat_errcode: 40029 })
  const { app } = await build(t)
  const res = await login(app, { code: 'bad' })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { error: 'invalid_code', wechat_errcode: 40029 })
  t.equal(await metricValue(app, 'login_requests_total', { result: 'invalid_code' }), 1)
})

t.test('the broker unreachable or slow: 503 upstream_unavailable, fast', async t => {
  const nock = useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).delay(2000).reply(200, { openid: 'late', unionid: null })
  const { app } = await build(t, testConfig({ brokerTimeoutMs: 100 }))
  const started = Date.now()
  const res = await login(app, { code: 'c' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'upstream_unavailable')
  t.ok(Date.now() - started < 1500)
  nock.enableNetConnect('127.0.0.1')
  const { app: down } = await build(t, testConfig({ brokerUrl: 'http://127.0.0.1:1' }))
  const res2 = await login(down, { code: 'c' })
  t.equal(res2.statusCode, 503)
  t.notMatch(res2.body, BROKER_TOKEN)
  t.equal((await down.inject('/readyz')).statusCode, 503)
  t.match((await down.inject('/readyz')).json().message, /broker/)
})

t.test('every validation rejection is a 4xx JSON error', async t => {
  useNock(t)
  const { app } = await build(t)
  const json = { 'content-type': 'application/json' }
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['{}', json, 400, 'invalid_body'],
    ['{"code": ""}', json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'x'.repeat(129) }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'has space' }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'ok', phoneCode: 'p'.repeat(129) }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'ok', nickname: 'n'.repeat(65) }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'ok', head_pic: 'http://insecure.example/a.png' }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 'ok', head_pic: `https://x.example/${'a'.repeat(500)}` }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: 5 }), json, 400, 'invalid_body'],
    [JSON.stringify({ code: ['a'] }), json, 400, 'invalid_body'],
    ['[]', json, 400, 'invalid_body'],
    ['null', json, 400, 'invalid_body'],
    ['{"code": "ok"', json, 400, 'invalid_body'],
    ['', json, 400, 'invalid_body'],
    ['code=a&code=b', { 'content-type': 'application/x-www-form-urlencoded' }, 400, 'invalid_body'],
    ['<xml/>', { 'content-type': 'application/xml' }, 415, 'unsupported_media_type'],
    ['code=x', { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
    [JSON.stringify({ code: 'ok', pad: 'x'.repeat(17 * 1024) }), json, 413, 'payload_too_large']
  ]
  for (const [payload, headers, status, error] of cases) {
    const res = await login(app, payload, headers)
    t.equal(res.statusCode, status, `${payload.slice(0, 40)} (${headers['content-type']})`)
    t.equal(res.json().error, error)
    t.type(res.json().message, 'string')
  }
  const phone = await app.inject({ method: 'POST', url: '/api/user/phone', payload: {} })
  t.equal(phone.statusCode, 401, 'the session is checked before the body')
})

t.test('phone limit: the 6th exchange in the window is 429 without calling WeChat; another user still passes', async t => {
  const nock = useNock(t)
  const { app } = await build(t)
  for (let i = 1; i <= 6; i++) broker.session(nock, `c${i}`, 'busy-user')
  // A new phone code each time (a repeated one is answered from its kept exchange, uncounted).
  const calls = Array.from({ length: 5 }, (_, i) => broker.phone(nock, `p${i + 1}`, 'busy-user').reply(400, broker.phoneError('invalid_phone_code', 40029)))
  for (let i = 1; i <= 5; i++) {
    const r = await login(app, { code: `c${i}`, phoneCode: `p${i}` })
    t.equal(r.statusCode, 200, `exchange ${i} allowed`)
    t.equal(r.headers['x-ratelimit-remaining'], String(5 - i))
  }
  const sixth = await login(app, { code: 'c6', phoneCode: 'p6' })
  t.equal(sixth.statusCode, 429)
  t.equal(sixth.json().error, 'rate_limited')
  t.ok(Number(sixth.headers['retry-after']) > 0 && Number(sixth.headers['retry-after']) <= 60)
  t.equal(sixth.headers['x-ratelimit-limit'], '5')
  t.ok(calls.every(c => c.isDone()), 'WeChat saw 5 calls, not 6')
  broker.session(nock, 'other', 'calm-user')
  broker.phone(nock, 'p2', 'calm-user').reply(200, broker.phoneInfo())
  t.equal((await login(app, { code: 'other', phoneCode: 'p2' })).statusCode, 200)
  t.equal(await metricValue(app, 'login_rate_limited_total', { scope: 'user' }), 1)
})

t.test('per-IP limit on /api, honouring X-Forwarded-For only with TRUST_PROXY', async t => {
  const nock = useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).times(20).reply(400, { error: 'invalid_code', message: 'x' })
  const { app } = await build(t, testConfig({ ipRateLimitMax: 2 }))
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await login(app, { code: 'x' }, { 'x-forwarded-for': `10.0.0.${i}` })).statusCode)
  t.same(statuses, [400, 400, 429], 'X-Forwarded-For ignored without TRUST_PROXY')
  const limited = await login(app, { code: 'x' })
  t.equal(limited.json().error, 'rate_limited')
  t.ok(limited.headers['retry-after'])
  t.equal((await app.inject('/healthz')).statusCode, 200, 'health is not limited')
  t.equal(await metricValue(app, 'login_rate_limited_total', { scope: 'ip' }), 2)

  const { app: proxied } = await build(t, testConfig({ ipRateLimitMax: 2, trustProxy: { kind: 'hops', hops: 1 } }))
  const ps = []
  for (let i = 0; i < 3; i++) ps.push((await login(proxied, { code: 'x' }, { 'x-forwarded-for': `10.0.0.${i}` })).statusCode)
  t.same(ps, [400, 400, 400], 'each forwarded client has its own budget')
})

t.test('me, phone, logout', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-9')
  broker.phone(nock, 'p', 'openid-9').reply(200, broker.phoneInfo('13700000000'))
  const { app } = await build(t)
  const { token } = (await login(app, { code: 'c' })).json()
  const auth = { authorization: `Bearer ${token}` }
  t.equal((await app.inject({ method: 'GET', url: '/api/user/me' })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: 'Bearer not-a-real-session-token' } })).json().error, 'unauthorized')
  const phone = await app.inject({ method: 'POST', url: '/api/user/phone', headers: auth, payload: { phoneCode: 'p' } })
  t.equal(phone.statusCode, 200)
  t.equal(phone.json().phone.purePhoneNumber, '13700000000')
  const bad = await app.inject({ method: 'POST', url: '/api/user/phone', headers: auth, payload: { phoneCode: '' } })
  t.equal(bad.statusCode, 400)
  const out = await app.inject({ method: 'POST', url: '/api/user/logout', headers: auth })
  t.equal(out.statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/api/user/me', headers: auth })).statusCode, 401, 'the token stopped working')
  t.equal((await app.inject({ method: 'POST', url: '/api/user/logout', headers: auth })).statusCode, 401)
})

t.test('POST /api/user/phone: an invalid code is a 400 here', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-10')
  broker.phone(nock, 'p', 'openid-10').reply(400, broker.phoneError('invalid_phone_code', 40029))
  const { app } = await build(t)
  const { token } = (await login(app, { code: 'c' })).json()
  const res = await app.inject({ method: 'POST', url: '/api/user/phone', headers: { authorization: `Bearer ${token}` }, payload: { phoneCode: 'p' } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { error: 'invalid_phone_code', wechat_errcode: 40029 })
})

t.test('the broker unreachable for the phone: phone_error, and no client token or code in errors', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-11')
  nock(BROKER).post(`/v1/apps/${APPID}/phone-number`).replyWithError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))
  const { app, logs } = await build(t)
  const res = await login(app, { code: 'c', phoneCode: 'secret-phone-code' })
  t.equal(res.statusCode, 200)
  t.match(res.json().phone_error, { error: 'upstream_unavailable' })
  for (const text of [res.body, logs.text()]) {
    t.notOk(text.includes(BROKER_TOKEN))
    t.notOk(text.includes('secret-phone-code'))
  }
})
