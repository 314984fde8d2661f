// POST /v1/apps/{appid}/phone-number: getuserphonenumber where it is billed. WeChat as nock; the
// kept answers on a real Redis where what a dump shows matters.
import t from 'tap'
import { createHash } from 'node:crypto'
import { createClient } from 'redis'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { APPID, OTHER_CLIENT_TOKEN, WX, auth, build, metricValue, testConfig, tokenReply, useNock } from './helper.js'

const KEY = 'b'.repeat(64)
const url = `/v1/apps/${APPID}/phone-number`
const info = (pure: string, appid = APPID): Record<string, unknown> => ({
  errcode: 0,
  errmsg: 'ok',
  phone_info: { phoneNumber: pure, purePhoneNumber: pure, countryCode: '86', watermark: { timestamp: 1, appid } }
})

type Reply = { statusCode: number, json: () => any, body: string, headers: Record<string, unknown> }

t.test('WeChat\'s answers mapped: the number, 40029, 45011, -1 (never retried), a watermark for another app', async t => {
  const nock = useNock(t)
  const { app, logs } = await build(t)
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-phone'))
  const phone = (code: string): ReturnType<ReturnType<typeof nock>['post']> =>
    nock(WX).post('/wxa/business/getuserphonenumber', { code, openid: 'o-1' }).query({ access_token: 'AT-phone' })
  const ask = async (code: string): Promise<Reply> =>
    await app.inject({ method: 'POST', url, headers: auth(), payload: { code, openid: 'o-1' } })

  phone('good').once().reply(200, info('13912345678'))
  const ok = await ask('good')
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { phone_info: { phoneNumber: '13912345678', purePhoneNumber: '13912345678', countryCode: '86' } })
  t.equal(ok.headers['cache-control'], 'no-store')

  phone('bad').once().reply(200, { errcode: 40029, errmsg: 'invalid code' })
  t.match((await ask('bad')).json(), { error: 'invalid_phone_code', wechat_errcode: 40029 })
  phone('often').once().reply(200, { errcode: 45011, errmsg: 'limit' })
  const limited = await ask('often')
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { error: 'rate_limited', wechat_errcode: 45011 })
  const busy = phone('busy').once().reply(200, { errcode: -1, errmsg: 'system error' })
  const failed = await ask('busy')
  t.equal(failed.statusCode, 503)
  t.match(failed.json(), { error: 'upstream_unavailable', wechat_errcode: -1 })
  t.ok(busy.isDone(), 'asked once: the code may be spent and a success is billed')
  phone('stamped').once().reply(200, info('13800000000', 'wxsomeoneelse0001'))
  const stamped = await ask('stamped')
  t.equal(stamped.statusCode, 503, 'a number stamped for another app is nobody\'s here')
  t.notOk(stamped.body.includes('13800000000'))

  t.equal(await metricValue(app, 'token_broker_phone_exchanges_total', { appid: APPID, result: 'ok' }), 1, 'billed: one')
  t.equal(await metricValue(app, 'token_broker_phone_exchanges_total', { appid: APPID, result: 'invalid_phone_code' }), 1)
  t.equal(await metricValue(app, 'wechat_api_requests_total', { api: 'getuserphonenumber' }), 5)
  const text = logs.text()
  for (const secret of ['AT-phone', '13912345678', 'good']) t.notOk(text.includes(secret), `no ${secret} in the logs`)
  t.ok(nock.isDone())
})

t.test('a refused token is replaced once, centrally, and the exchange sent again', async t => {
  const nock = useNock(t)
  const { app } = await build(t)
  nock(WX).post('/cgi-bin/stable_token').once().reply(200, tokenReply('AT-stale'))
  nock(WX).post('/wxa/business/getuserphonenumber').query({ access_token: 'AT-stale' }).once()
    .reply(200, { errcode: 40001, errmsg: 'invalid credential' })
  nock(WX).post('/cgi-bin/stable_token', b => b.force_refresh === true).once().reply(200, tokenReply('AT-fresh'))
  nock(WX).post('/wxa/business/getuserphonenumber').query({ access_token: 'AT-fresh' }).once().reply(200, info('13700000000'))
  const res = await app.inject({ method: 'POST', url, headers: auth(), payload: { code: 'c' } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().phone_info.purePhoneNumber, '13700000000')
  t.ok(nock.isDone())
})

t.test('bodies are validated; a client not allowed the app learns nothing', async t => {
  useNock(t)
  const { app } = await build(t)
  for (const payload of [{}, { code: '' }, { code: 'c', extra: 1 }, { code: 'c', retry_key_sha256: 'short' }, { code: 'c', openid: 'a b' }]) {
    t.equal((await app.inject({ method: 'POST', url, headers: auth(), payload })).statusCode, 400, JSON.stringify(payload))
  }
  t.equal((await app.inject({ method: 'POST', url, headers: auth(OTHER_CLIENT_TOKEN), payload: { code: 'c' } })).statusCode, 403)
  t.equal((await app.inject({ method: 'POST', url, payload: { code: 'c' } })).statusCode, 401)
})

t.test('kept (Redis): once per code, the number again only to the same client, key and openid; sealed in a dump', async t => {
  const nock = useNock(t)
  const redis = await startRedisServer(t)
  const config = testConfig({
    redis: redis.connection,
    redlock: [redis.connection],
    clients: [
      { name: 'login-api', token: 'client-token-login-api-0123456789', apps: ['*'], admin: false },
      { name: 'second', token: 'client-token-second-service-012345', apps: ['*'], admin: false }
    ]
  })
  const [a, b] = [(await build(t, config)).app, (await build(t, config)).app]
  for (const app of [a, b]) {
    await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'broker ready' })
  }
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-kept')).persist()
  // WeChat answers slowly: the second replica's request arrives while the first's is held.
  const once = nock(WX).post('/wxa/business/getuserphonenumber').query(true).once().delay(300).reply(200, info('13512345678'))
  const ask = async (app: typeof a, payload: Record<string, unknown>, token?: string): Promise<Reply> =>
    await app.inject({ method: 'POST', url, headers: auth(token), payload })
  const body = { code: 'phone-code-kept', openid: 'o-kept', retry_key_sha256: KEY }
  const [first, second] = await Promise.all([ask(a, body), ask(b, body)])
  t.same([first.statusCode, second.statusCode], [200, 200])
  t.equal(second.json().phone_info.purePhoneNumber, '13512345678', 'the second waited for the first\'s answer')
  t.ok(once.isDone(), 'WeChat saw the code once (one billed exchange)')
  t.equal((await ask(b, body)).json().phone_info.purePhoneNumber, '13512345678', 'a retry gets it, with no call')
  const kept = async (app: typeof a): Promise<number> =>
    await metricValue(app, 'token_broker_phone_exchanges_total', { appid: APPID, result: 'kept' })
  t.equal(await kept(a) + await kept(b), 2, 'the waiter and the retry: answered from the kept number')

  for (const [what, payload, token] of [
    ['another retry key', { ...body, retry_key_sha256: 'c'.repeat(64) }, undefined],
    ['another openid', { ...body, openid: 'o-thief' }, undefined],
    ['no retry key, no openid', { code: body.code }, undefined],
    ['another client', body, 'client-token-second-service-012345']
  ] as const) {
    if (what === 'no retry key, no openid') {
      nock(WX).post('/wxa/business/getuserphonenumber').query(true).once().reply(200, { errcode: 40163, errmsg: 'code been used' })
    }
    const res = await ask(a, payload, token)
    t.equal(res.statusCode, 400, `${what}: refused`)
    t.match(res.json(), { error: 'invalid_phone_code', wechat_errcode: 40163 }, `${what}: as WeChat says of a used code`)
    t.notOk(res.body.includes('13512345678'))
  }

  const c = createClient({ url: redis.url })
  c.on('error', () => {})
  await c.connect()
  t.teardown(async () => { await c.quit() })
  const dump: string[] = []
  for (const key of await c.keys('*')) {
    const type = await c.type(key)
    dump.push(key, type === 'string' ? (await c.get(key)) ?? '' : JSON.stringify(await c.hGetAll(key)))
  }
  const all = dump.join('\n')
  t.notOk(all.includes('13512345678'), 'the number is sealed at rest')
  t.notOk(all.includes('5123'), 'no digits of it either')
  t.notOk(all.includes(body.code), 'nor the code')
  t.ok(all.includes(createHash('sha256').update(body.code).digest('hex')), 'the note is named by the code\'s hash')
})

t.test('the usage poll (against the simulator): every billed exchange in the gauges, with the quota bought', async t => {
  const { createSimulator } = await import('@wxlogin/wechat-sim')
  const { SECRET } = await import('./helper.js')
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  const simUrl = `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}`
  await sim.app.inject({ method: 'POST', url: '/__sim/charge-quota', payload: { spuId: '10000077', total: 100 } })
  const { app, logs } = await build(t, testConfig({ wechatBaseUrl: simUrl, phoneUsage: { pollMs: 50, spuIds: ['10000077', '10000078'] } }))
  await app.ready()
  const gauge = async (name: string, spu: string): Promise<number | undefined> => await metricValue(app, name, { appid: APPID, spu })
  await waitFor(async () => (await gauge('wechat_charge_quota_total', '10000077')) === 100, { what: 'the quota bought' })
  await waitFor(async () => (await gauge('wechat_charge_quota_total', '10000078')) === 1000, { what: 'a spu without a purchase: the free trial' })
  for (let i = 0; i < 3; i++) {
    const { code } = sim.state.mintPhoneCode(APPID, `1390000000${i}`)
    t.equal((await app.inject({ method: 'POST', url, headers: auth(), payload: { code } })).statusCode, 200)
  }
  await waitFor(async () => (await gauge('wechat_charge_quota_used', '10000077')) === 3, { what: 'three billed exchanges seen' })
  t.equal(await metricValue(app, 'token_broker_phone_exchanges_total', { appid: APPID, result: 'ok' }), 3, 'the counter agrees')
  t.notOk(logs.text().includes(sim.state.issuedTokens()[0] as string), 'no access_token in the logs')
})

t.test('user-risk-rank: WeChat\'s rank for the app\'s token; bodies validated; -1 is a 503', async t => {
  const nock = useNock(t)
  const { app } = await build(t)
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-risk'))
  const risk = `/v1/apps/${APPID}/user-risk-rank`
  nock(WX).post('/wxa/getuserriskrank', { appid: APPID, openid: 'o-r', scene: 0, client_ip: '203.0.113.9' })
    .query({ access_token: 'AT-risk' }).once().reply(200, { errcode: 0, errmsg: 'getuserriskrank succ', risk_rank: 3, unoin_id: 0 })
  const ok = await app.inject({ method: 'POST', url: risk, headers: auth(), payload: { openid: 'o-r', scene: 0, client_ip: '203.0.113.9' } })
  t.same([ok.statusCode, ok.json()], [200, { risk_rank: 3 }])
  nock(WX).post('/wxa/getuserriskrank').query(true).times(4).reply(200, { errcode: -1, errmsg: 'busy' })
  const busy = await app.inject({ method: 'POST', url: risk, headers: auth(), payload: { openid: 'o-r', scene: 0, client_ip: '::1' } })
  t.equal(busy.statusCode, 503)
  for (const payload of [{ openid: 'o', scene: 2, client_ip: '1.2.3.4' }, { openid: 'o', scene: 0 }, { openid: 'o', scene: 0, client_ip: 'not an ip' }]) {
    t.equal((await app.inject({ method: 'POST', url: risk, headers: auth(), payload })).statusCode, 400, JSON.stringify(payload))
  }
  t.equal((await app.inject({ method: 'POST', url: risk, headers: auth(OTHER_CLIENT_TOKEN), payload: { openid: 'o', scene: 0, client_ip: '1.2.3.4' } })).statusCode, 403)
})
