// The broker under what it must not fail at: its Redis gone mid-login, a WeChat record it cannot
// decode, a memory store that must forget, and callers that must never wait on WeChat.
import t from 'tap'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { createSimulator, CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { MemoryTokenStore } from '../src/store/memory-token-store.js'
import { scrubBody, scrubUrl } from '../src/wechat/scrub.js'
import { APPID, SECRET, WX, auth, build, testConfig, tokenReply, useNock } from './helper.js'

const RETRY_KEY_SHA256 = 'a'.repeat(64)

t.test('code2session with retry_key_sha256 while Redis is unreachable: answered (not kept), never a 500', async t => {
  const nock = useNock(t)
  const redis = await startRedisServer(t)
  const { app, logs } = await build(t, testConfig({ redis: redis.connection, redlock: [redis.connection] }))
  await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'broker ready' })
  const exchange = async (code: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/code2session`, headers: auth(), payload: { js_code: code, retry_key_sha256: RETRY_KEY_SHA256 } })
  nock(WX).get('/sns/jscode2session').query(q => q.js_code === 'code-kept').reply(200, { openid: 'o-kept', session_key: 'sk' })
  t.equal((await exchange('code-kept')).statusCode, 200, 'with Redis: answered and kept')

  await redis.stop()
  await waitFor(async () => (await app.inject('/readyz')).json().status !== 'ready', { what: 'Redis seen down' })
  nock(WX).get('/sns/jscode2session').query(q => q.js_code === 'code-unkept').reply(200, { openid: 'o-unkept', session_key: 'sk' })
  const res = await exchange('code-unkept')
  t.equal(res.statusCode, 200, `Redis down: answered as without a retry key: ${JSON.stringify(res.json())}`)
  t.same(res.json(), { openid: 'o-unkept', unionid: null })
  t.ok(logs.lines().some(l => l.msg === 'code2session answered without keeping it: the store is unreachable'), 'and the log says it was not kept')
  t.notOk(logs.lines().some(l => Number(l.level) >= 50), 'nothing logged at error')
})

t.test('the memory store forgets what it kept: claims, notes, failures and counts expire with their time', async t => {
  const store = new MemoryTokenStore()
  for (let i = 0; i < 50_000; i++) {
    await store.claim(APPID, `c2s:${i}`, 1)
    await store.note(APPID, `c2s:${i}`, '{"owner":"x","openid":"o"}', 1)
  }
  const setAt = Date.now()
  await waitFor(() => Date.now() > setAt + 2, { what: 'their life to pass' })
  t.equal(await store.readNote(APPID, 'c2s:1'), null, 'an expired note reads as gone')
  t.equal(await store.claim(APPID, 'c2s:1', 60_000), true, 'an expired claim is free again')
  for (let i = 0; i < 20_000; i++) await store.note(APPID, `later:${i}`, 'v', 60_000)
  t.ok(store.held < 50_000, `the 100,000 expired entries were dropped: ${store.held} held`)
})

t.test('rid: WeChat\'s record with a malformed percent-encoding is scrubbed, never a 500', async t => {
  const nock = useNock(t)
  const { app, logs } = await build(t)
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('tok-rid'))
  nock(WX).post('/cgi-bin/openapi/rid/get').query(true).reply(200, {
    errcode: 0,
    errmsg: 'ok',
    request: { invoke_time: 1, cost_in_ms: 2, request_url: 'access_token=tok&%E0%A4%A=13800138000&bad%ZZ=x', request_body: '%zz=1&code=c', response_body: '{}' }
  })
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/rid/rid-1`, headers: auth() })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().request.request_url, 'access_token=***&***=***&***=***')
  t.notMatch(res.body, /13800138000|token=tok/)
  t.notOk(logs.lines().some(l => Number(l.level) >= 50), 'nothing logged at error')
  t.equal(scrubUrl('https://x/y?%E0=1&lang=zh_CN'), 'https://x/y?***=***&lang=zh_CN')
  t.equal(scrubBody('a%=1'), '***=***')
})

t.test('GET /v1/.../access-token never checks with WeChat, however often one caller reads it', async t => {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  const url = `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}`
  const { app } = await build(t, testConfig({ wechatBaseUrl: url }))
  for (let i = 0; i < 20; i++) {
    const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })
    t.equal(res.statusCode, 200)
  }
  t.equal(sim.state.calls.getcallbackip, 0, 'no check: a /v1 caller reports a dead token with invalidate')
  t.equal(sim.state.calls.stable_token, 1)
  await sim.app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/revoke`, payload: { appid: APPID } })
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })
  const fresh = await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/access-token/invalidate`, headers: auth(), payload: { access_token: res.json().access_token } })
  t.not(fresh.json().access_token, res.json().access_token, 'invalidate replaces the revoked token')
})
