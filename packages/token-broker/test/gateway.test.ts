// The WeChat API gateway: a client with only the broker's URL and its client token calls WeChat's
// server APIs it is allowed; WeChat (nock) sees the app's token, the caller never does.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { APPID, WX, auth, build, metricValue, testConfig, tokenReply, useNock } from './helper.js'

const SERVICE_TOKEN = 'client-token-content-service-0123456789'
const NO_APIS_TOKEN = 'client-token-no-gateway-service-01234567'
const clients = [
  { name: 'content', token: SERVICE_TOKEN, apps: ['*'], admin: false, apis: ['/wxa/msg_sec_check', '/wxa/getwxacodeunlimit', '/cgi-bin/message/*'] },
  { name: 'plain', token: NO_APIS_TOKEN, apps: ['*'], admin: false }
]
const gw = (path: string): string => `/v1/apps/${APPID}/wechat${path}`

t.test('an allowed call goes on with the app\'s token; query and body pass; the answer comes back without the token', async t => {
  const nock = useNock(t)
  const { app, logs } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-real-secret'))
  const check = nock(WX)
    .post('/wxa/msg_sec_check', { content: '你好', version: 2, scene: 1, openid: 'o-1' })
    .query({ access_token: 'AT-real-secret', extra: '1' })
    .reply(200, { errcode: 0, errmsg: 'ok', result: { suggest: 'pass', label: 100 } })
  const res = await app.inject({
    method: 'POST',
    url: `${gw('/wxa/msg_sec_check')}?access_token=caller-supplied&extra=1`,
    headers: { ...auth(SERVICE_TOKEN), 'content-type': 'application/json' },
    payload: JSON.stringify({ content: '你好', version: 2, scene: 1, openid: 'o-1' })
  })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { errcode: 0, result: { suggest: 'pass' } })
  t.ok(check.isDone(), 'WeChat got the app\'s token (the caller\'s was dropped), the query and the body')
  t.notOk(JSON.stringify(res.headers).includes('AT-real-secret') || res.body.includes('AT-real-secret'), 'the token never reaches the caller')
  t.notOk(logs.text().includes('AT-real-secret') || logs.text().includes('你好'), 'nor the logs (no bodies either)')
  t.equal(await metricValue(app, 'token_broker_gateway_requests_total', { client: 'content', api: '/wxa/msg_sec_check', result: 'ok' }), 1)
})

t.test('a binary answer byte for byte; a prefix entry allows its subtree', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('AT-1'))
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(70_000)])
  nock(WX).post('/wxa/getwxacodeunlimit').query({ access_token: 'AT-1' }).reply(200, png, { 'content-type': 'image/png', connection: 'close' })
  const res = await app.inject({ method: 'POST', url: gw('/wxa/getwxacodeunlimit'), headers: { ...auth(SERVICE_TOKEN), 'content-type': 'application/json' }, payload: '{"scene":"a=1"}' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'image/png')
  t.ok(res.rawPayload.equals(png), 'the same bytes')
  t.notOk(res.headers.connection === 'close' && res.headers['keep-alive'] !== undefined, 'hop-by-hop headers are not passed on')
  nock(WX).post('/cgi-bin/message/subscribe/send').query({ access_token: 'AT-1' }).reply(200, { errcode: 43101, errmsg: 'user refuse to accept the msg' })
  const sub = await app.inject({ method: 'POST', url: gw('/cgi-bin/message/subscribe/send'), headers: { ...auth(SERVICE_TOKEN), 'content-type': 'application/json' }, payload: '{}' })
  t.equal(sub.json().errcode, 43101, 'WeChat\'s own errors pass as they are')
  t.equal(await metricValue(app, 'token_broker_gateway_requests_total', { client: 'content', api: '/cgi-bin/message/*', result: '43101' }), 1)
})

t.test('40001 is recovered once, centrally: the caller sees the answer to the call sent again', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  nock(WX).post('/cgi-bin/stable_token').once().reply(200, tokenReply('AT-revoked'))
  nock(WX).post('/wxa/msg_sec_check').query({ access_token: 'AT-revoked' }).once().reply(200, { errcode: 40001, errmsg: 'invalid credential' })
  nock(WX).post('/cgi-bin/stable_token', b => b.force_refresh === true).once().reply(200, tokenReply('AT-fresh'))
  nock(WX).post('/wxa/msg_sec_check').query({ access_token: 'AT-fresh' }).once().reply(200, { errcode: 0, errmsg: 'ok' })
  const res = await app.inject({ method: 'POST', url: gw('/wxa/msg_sec_check'), headers: { ...auth(SERVICE_TOKEN), 'content-type': 'application/json' }, payload: '{}' })
  t.same(res.json(), { errcode: 0, errmsg: 'ok' }, 'never the 40001')
  t.ok(nock.isDone(), 'one forced refresh, the call sent twice')
})

t.test('refused where it must be: a path not in apis, a client without apis, an unknown caller, a path escape', async t => {
  const nock = useNock(t)
  const { app } = await build(t, testConfig({ clients }))
  const post = async (path: string, token?: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: gw(path), headers: { ...(token === undefined ? {} : auth(token)), 'content-type': 'application/json' }, payload: '{}' })
  const other = await post('/cgi-bin/user/info', SERVICE_TOKEN)
  t.equal(other.statusCode, 403)
  t.match(other.json(), { error: 'forbidden', wechat_errcode: 40125 })
  t.equal((await post('/wxa/msg_sec_check', NO_APIS_TOKEN)).statusCode, 403, 'no apis: no gateway')
  t.equal((await post('/wxa/msg_sec_check')).statusCode, 401)
  t.equal((await post('/cgi-bin/message/../user/info', SERVICE_TOKEN)).statusCode, 403, 'a prefix cannot be escaped')
  t.equal((await post('/wxa/msg_sec_check_more', SERVICE_TOKEN)).statusCode, 403, 'an exact entry is exact')
  t.ok(nock.isDone(), 'WeChat was not called')
})
