// The gateway in WeChat's shape (an SDK's base URL pointed at the broker), surrogate tokens and
// the per-client bounds. WeChat is nock: it sees the app's real token, the caller never does.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { APPID, SECRET, WX, auth, build, metricValue, testConfig, tokenReply, useNock } from './helper.js'
import { SurrogateTokens } from '../src/gateway/surrogates.js'
import { GatewayLimits } from '../src/gateway/limits.js'
import type { BrokerClientConfig } from '../src/config.js'

const SURROGATE_CLIENT = 'client-token-surrogate-service-01234567'
const REAL_CLIENT = 'client-token-real-form-service-012345678'
const LIMITED_CLIENT = 'client-token-limited-service-0123456789'
const clients: BrokerClientConfig[] = [
  { name: 'masked', token: SURROGATE_CLIENT, apps: ['*'], admin: false, tokenForm: 'surrogate', apis: ['/cgi-bin/message/*', '/wxa/*'] },
  { name: 'plain', token: REAL_CLIENT, apps: ['*'], admin: false, apis: ['/wxa/msg_sec_check'] },
  { name: 'limited', token: LIMITED_CLIENT, apps: ['*'], admin: false, tokenForm: 'surrogate', apis: ['/wxa/*'], gatewayConcurrency: 1 }
]

async function tokenFor (app: Awaited<ReturnType<typeof build>>['app'], secret: string): Promise<{ access_token: string, expires_in: number }> {
  const res = await app.inject({ url: `/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${secret}` })
  return res.json()
}

t.test('a surrogate client is handed a surrogate; WeChat-shaped calls with it reach WeChat with the real token', async t => {
  const nock = useNock(t)
  const { app, logs } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-real-secret'))
  const handed = await tokenFor(app, SURROGATE_CLIENT)
  t.match(handed.access_token, /^wxbs1_/, 'a surrogate, not the real token')
  t.ok(handed.expires_in > 7000, 'with the real token\'s life')
  const send = nock(WX)
    .post('/cgi-bin/message/subscribe/send', { touser: 'o-1', template_id: 'T' })
    .query({ access_token: 'AT-real-secret', lang: 'zh_CN' })
    .reply(200, { errcode: 0, errmsg: 'ok', msgid: 7 })
  const res = await app.inject({
    method: 'POST',
    url: `/cgi-bin/message/subscribe/send?access_token=${handed.access_token}&lang=zh_CN`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ touser: 'o-1', template_id: 'T' })
  })
  t.same(res.json(), { errcode: 0, errmsg: 'ok', msgid: 7 })
  t.ok(send.isDone(), 'WeChat saw the real token, the query and the body')
  t.notOk(res.body.includes('AT-real') || JSON.stringify(res.headers).includes('AT-real'), 'the real token never reaches the caller')
  t.notOk(logs.text().includes('AT-real') || logs.text().includes(handed.access_token), 'nor the logs, nor the surrogate')
  t.equal(await metricValue(app, 'token_broker_gateway_requests_total', { client: 'masked', api: '/cgi-bin/message/*', result: 'ok' }), 1)

  const real = await app.inject({ url: `/v1/apps/${APPID}/access-token`, headers: auth(SURROGATE_CLIENT) })
  t.equal(real.statusCode, 403, 'a surrogate client gets no real token from /v1 either')
  t.match(real.json(), { error: 'forbidden' })

  nock(WX).get('/cgi-bin/ticket/getticket').query({ access_token: 'AT-real-secret', type: 'jsapi' }).reply(200, { errcode: 0, errmsg: 'ok', ticket: 'TICKET-1', expires_in: 7200 })
  const ticket = await app.inject({ url: `/cgi-bin/ticket/getticket?access_token=${handed.access_token}&type=jsapi` })
  t.match(ticket.json(), { errcode: 0, ticket: 'TICKET-1' }, 'JS-SDK tickets accept the surrogate')
})

t.test('a binary answer streams back byte for byte; 40001 is recovered behind a WeChat-shaped call', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').once().reply(200, tokenReply('AT-revoked'))
  const { access_token: surrogate } = await tokenFor(app, SURROGATE_CLIENT)
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), randomBytes(3_000_000)])
  nock(WX).post('/wxa/getwxacodeunlimit').query({ access_token: 'AT-revoked' }).once().reply(200, { errcode: 40001, errmsg: 'invalid credential' })
  nock(WX).post('/cgi-bin/stable_token', b => b.force_refresh === true).once().reply(200, tokenReply('AT-fresh'))
  nock(WX).post('/wxa/getwxacodeunlimit').query({ access_token: 'AT-fresh' }).once().reply(200, png, { 'content-type': 'image/png' })
  const res = await app.inject({ method: 'POST', url: `/wxa/getwxacodeunlimit?access_token=${surrogate}`, headers: { 'content-type': 'application/json' }, payload: '{"scene":"a=1"}' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'image/png')
  t.ok(res.rawPayload.equals(png), 'the same 3 MB, never the 40001')
  t.ok(nock.isDone(), 'one forced refresh, the call sent twice')
})

t.test('a real-form client\'s real token works while it is current, within its apis', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-real'))
  const { access_token: real } = await tokenFor(app, REAL_CLIENT)
  t.equal(real, 'AT-real', 'token_form real: the real token, as before')
  nock(WX).post('/wxa/msg_sec_check').query({ access_token: 'AT-real' }).reply(200, { errcode: 0, errmsg: 'ok' })
  const ok = await app.inject({ method: 'POST', url: `/wxa/msg_sec_check?access_token=${real}`, payload: '{}', headers: { 'content-type': 'application/json' } })
  t.same(ok.json(), { errcode: 0, errmsg: 'ok' })
  t.equal(await metricValue(app, 'token_broker_gateway_requests_total', { client: 'plain', api: '/wxa/msg_sec_check', result: 'ok' }), 1, 'counted as the first real-form client allowing the path')
  const other = await app.inject({ method: 'POST', url: `/wxa/getwxacodeunlimit?access_token=${real}`, payload: '{}', headers: { 'content-type': 'application/json' } })
  t.match(other.json(), { errcode: 40125 }, 'a path no real-form client allows')
  t.ok(nock.isDone())
})

t.test('refused in WeChat\'s shape: no token, an unknown or forged one, another app\'s key, an expired surrogate', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-1'))
  const { access_token: surrogate } = await tokenFor(app, SURROGATE_CLIENT)
  const call = async (query: string): Promise<{ errcode: number }> =>
    (await app.inject({ method: 'POST', url: `/wxa/msg_sec_check${query}`, payload: '{}', headers: { 'content-type': 'application/json' } })).json()
  t.match(await call(''), { errcode: 41001 })
  t.match(await call('?access_token=AT-unknown'), { errcode: 40001 })
  const forged = surrogate.slice(0, -4) + (surrogate.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  t.match(await call(`?access_token=${forged}`), { errcode: 40001 }, 'a surrogate with a wrong MAC')
  const clock = { now: Date.now() }
  const elsewhere = new SurrogateTokens([{ appid: APPID, secret: 'another-broker-secret', tokenMode: 'stable' }], clients)
  t.match(await call(`?access_token=${elsewhere.issue(clients[0]!, APPID, clock.now + 60_000)}`), { errcode: 40001 }, 'one made under another secret')
  const here = new SurrogateTokens([{ appid: APPID, secret: SECRET, tokenMode: 'stable' }], clients, () => clock.now)
  const short = here.issue(clients[0]!, APPID, clock.now + 1000)
  t.match(here.open(short), { appid: APPID, client: { name: 'masked' } })
  clock.now += 1000
  t.equal(here.open(short), 'expired', 'past its expiry')
  t.match(await call(`?access_token=${here.issue(clients[0]!, APPID, Date.now() - 1)}`), { errcode: 42001 }, 'the broker says 42001: the SDK asks again')
  const rotated = new SurrogateTokens([{ appid: APPID, secret: SECRET, tokenMode: 'stable' }], [{ ...clients[0]!, token: 'client-token-surrogate-service-rotated0' }])
  t.equal(rotated.open(surrogate), null, 'a rotated client token ends the surrogates it was handed')
  t.equal(await metricValue(app, 'token_broker_auth_failures_total', { route: '/wxa/*', errcode: '40001' }), 3, 'refusals are counted as failed authentications')
  t.ok(nock.isDone(), 'WeChat saw no call')
})

t.test('per-client bounds: concurrency at the broker, and a rate from a token bucket', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-1'))
  const { access_token: surrogate } = await tokenFor(app, LIMITED_CLIENT)
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  let entered: () => void = () => {}
  const inFlight = new Promise<void>(resolve => { entered = resolve })
  nock(WX).post('/wxa/msg_sec_check').query(true).reply(200, async () => { entered(); await held; return { errcode: 0, errmsg: 'ok' } })
  const call = async (): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: `/wxa/msg_sec_check?access_token=${surrogate}`, payload: '{}', headers: { 'content-type': 'application/json' } })
  const first = call()
  await inFlight
  const second = (await call()).json()
  t.equal(second.errcode, 45011, 'a second call while one is in flight is refused')
  t.match(second.errmsg, /gateway_concurrency/)
  release()
  t.same((await first).json(), { errcode: 0, errmsg: 'ok' }, 'the first completes')
  t.equal(await metricValue(app, 'token_broker_gateway_requests_total', { client: 'limited', api: '/wxa/*', result: 'limited_concurrency' }), 1)

  const clock = { now: 0 }
  const limits = new GatewayLimits(() => clock.now)
  const rated = { ...clients[0]!, gatewayRate: 2 }
  const take = (): unknown => { const r = limits.acquire(rated); if (typeof r === 'function') r(); return r }
  t.type(take(), 'function')
  t.type(take(), 'function', 'a burst of one second\'s worth')
  t.equal(take(), 'rate')
  clock.now += 500
  t.type(take(), 'function', 'half a second gives one more')
  t.equal(take(), 'rate')
})
