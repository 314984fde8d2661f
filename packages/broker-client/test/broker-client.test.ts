import t from 'tap'
import nock from 'nock'
import { useNock } from '@wxlogin/testing'
import { BrokerError, BrokerUnavailableError, createBrokerClient } from '../src/index.js'

const BROKER = 'http://broker.test'
const TOKEN = 'client-token-0123456789'
const APPID = 'wxclienttest0001'

const body = (token: string, inSeconds = 7200): object => ({
  access_token: token,
  expires_in: inSeconds,
  expires_at: new Date(Date.now() + inSeconds * 1000).toISOString()
})

t.test('getAccessToken: sends the bearer token, caches until near expiry, shares one request', async t => {
  useNock(t)
  const scope = nock(BROKER, { reqheaders: { authorization: `Bearer ${TOKEN}` } })
    .get(`/v1/apps/${APPID}/access-token`).once().delay(20).reply(200, body('tok-1'))
  const client = createBrokerClient({ baseUrl: `${BROKER}/`, token: TOKEN })
  const all = await Promise.all(Array.from({ length: 20 }, async () => await client.getAccessToken(APPID)))
  t.ok(all.every(x => x === 'tok-1'))
  t.equal(await client.getAccessToken(APPID), 'tok-1', 'cached')
  t.ok(scope.isDone(), 'one request')
})

t.test('getAccessToken: a token inside the refresh margin is fetched again', async t => {
  useNock(t)
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).reply(200, body('short', 30))
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).reply(200, body('long'))
  const client = createBrokerClient({ baseUrl: BROKER, token: TOKEN, refreshMarginMs: 60_000 })
  t.equal(await client.getAccessToken(APPID), 'short')
  t.equal(await client.getAccessToken(APPID), 'long')
})

t.test('invalidate: posts the stale token and caches the new one', async t => {
  useNock(t)
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).reply(200, body('stale'))
  const inv = nock(BROKER).post(`/v1/apps/${APPID}/access-token/invalidate`, { access_token: 'stale' }).once().reply(200, body('fresh'))
  const client = createBrokerClient({ baseUrl: BROKER, token: TOKEN })
  t.equal(await client.getAccessToken(APPID), 'stale')
  t.equal(await client.invalidate(APPID, 'stale'), 'fresh')
  t.equal(await client.getAccessToken(APPID), 'fresh', 'cached')
  t.equal(await client.invalidate(APPID, 'stale'), 'fresh', 'an already-replaced token needs no request')
  t.ok(inv.isDone())
})

t.test('code2session', async t => {
  useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`, { js_code: 'c' }).reply(200, { openid: 'o', unionid: null })
  const client = createBrokerClient({ baseUrl: BROKER, token: TOKEN })
  t.same(await client.code2session(APPID, 'c'), { openid: 'o', unionid: null })
})

t.test('errors carry the broker\'s code, status and WeChat errcode', async t => {
  useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).reply(400, { error: 'invalid_code', message: 'The login code is invalid or expired.', wechat_errcode: 40029 })
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).reply(401, { error: 'unauthorized', message: 'no' })
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).reply(502, '<html>bad gateway</html>')
  const client = createBrokerClient({ baseUrl: BROKER, token: TOKEN })
  const e1 = await client.code2session(APPID, 'c').catch((e: unknown) => e) as BrokerError
  t.ok(e1 instanceof BrokerError)
  t.same([e1.code, e1.statusCode, e1.wechatErrcode], ['invalid_code', 400, 40029])
  const e2 = await client.getAccessToken(APPID).catch((e: unknown) => e) as BrokerError
  t.same([e2.code, e2.statusCode], ['unauthorized', 401])
  const e3 = await client.getAccessToken(APPID).catch((e: unknown) => e) as BrokerError
  t.ok(e3 instanceof BrokerUnavailableError)
  t.equal(e3.code, 'upstream_unavailable')
})

t.test('an unreachable or slow broker fails fast with upstream_unavailable and no token in the error', async t => {
  useNock(t)
  nock(BROKER).get(`/v1/apps/${APPID}/access-token`).delay(500).reply(200, body('late'))
  const slow = createBrokerClient({ baseUrl: BROKER, token: TOKEN, timeoutMs: 50 })
  const e = await slow.getAccessToken(APPID).catch((err: unknown) => err) as BrokerError
  t.ok(e instanceof BrokerUnavailableError)
  t.match(e.message, /timed out/)
  nock.enableNetConnect('127.0.0.1')
  const down = createBrokerClient({ baseUrl: 'http://127.0.0.1:1', token: TOKEN })
  const e2 = await down.getAccessToken(APPID).catch((err: unknown) => err) as BrokerError
  t.ok(e2 instanceof BrokerUnavailableError)
  t.match(e2.message, /ECONNREFUSED/)
  t.notMatch(JSON.stringify({ ...e2, message: e2.message, stack: e2.stack }), TOKEN)
  t.equal(await down.ping(), false)
})
