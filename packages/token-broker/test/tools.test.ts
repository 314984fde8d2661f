import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { createSimulator, type Simulator } from '@wxlogin/wechat-sim'
import { jssdkSignature, pageUrlForSignature } from '../src/credentials/jssdk.js'
import { scrubBody, scrubRidRecord, scrubUrl } from '../src/wechat/scrub.js'
import { APPID, CLIENT_TOKEN, SECRET, auth, build, metricValue, testConfig } from './helper.js'

const ADMIN_TOKEN = 'client-token-admin-0123456789abcdef'

async function startSim (t: Test): Promise<Simulator & { url: string }> {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  return { ...sim, url: `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}` }
}

const clients = [
  { name: 'orders-service', token: CLIENT_TOKEN, apps: ['*'], admin: false },
  { name: 'ops-oncall', token: ADMIN_TOKEN, apps: ['*'], admin: true }
]

t.test('JS-SDK signature: WeChat\'s own worked example', async t => {
  // From WeChat's JS-SDK documentation (附录1), values and result as published there.
  t.equal(jssdkSignature({
    ticket: 'sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg',
    nonceStr: 'Wm3WZYTPz0wzccnW',
    timestamp: 1414587457,
    url: 'http://mp.weixin.qq.com?params=value'
  }), '0f9de62fce790f9a083d5c99e95740ceb90c27ed')
  t.equal(pageUrlForSignature('https://a.example/p?x=1#/route'), 'https://a.example/p?x=1', 'the #fragment is not signed')
  t.equal(pageUrlForSignature('https://a.example/p?x=%E4%B8%AD'), 'https://a.example/p?x=%E4%B8%AD', 'nothing else is touched')
})

t.test('POST jssdk-signature: a wx.config signed over the app\'s jsapi ticket', async t => {
  const sim = await startSim(t)
  const { app } = await build(t, testConfig({ wechatBaseUrl: sim.url }))
  const url = 'https://shop.example.com/item?id=42&from=timeline#reviews'
  const res = await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/jssdk-signature`, headers: auth(), payload: { url } })
  t.equal(res.statusCode, 200)
  const body = res.json() as { appId: string, timestamp: number, nonceStr: string, signature: string }
  t.equal(body.appId, APPID)
  t.ok(Math.abs(body.timestamp - Date.now() / 1000) < 60, 'timestamp in Unix seconds')
  t.match(body.nonceStr, /^[A-Za-z0-9_-]{16}$/)
  const ticket = (await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/tickets/jsapi`, headers: auth() })).json().ticket as string
  // Computed here from the fields, independently of the broker's code.
  const expected = createHash('sha1').update(`jsapi_ticket=${ticket}&noncestr=${body.nonceStr}&timestamp=${body.timestamp}&url=https://shop.example.com/item?id=42&from=timeline`).digest('hex')
  t.equal(body.signature, expected)
  t.equal(sim.state.calls.getticket, 1, 'the ticket is fetched once and kept')
  t.equal(res.headers['cache-control'], 'no-store')

  for (const bad of [{}, { url: 'javascript:alert(1)' }, { url: 'https://x.example/ a' }, { url: 'https://x.example/' + 'a'.repeat(2100) }, { url: 'https://x.example/', extra: 1 }]) {
    const r = await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/jssdk-signature`, headers: auth(), payload: bad })
    t.equal(r.statusCode, 400, `refused: ${JSON.stringify(bad).slice(0, 60)}`)
    t.equal(r.json().error, 'invalid_body')
  }
  t.equal((await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/jssdk-signature`, payload: { url } })).statusCode, 401)
})

t.test('quota: today\'s use of an API, straight from WeChat', async t => {
  const sim = await startSim(t)
  const { app } = await build(t, testConfig({ wechatBaseUrl: sim.url, clients }))
  await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/quota?cgi_path=/cgi-bin/stable_token`, headers: auth() })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { quota: { daily_limit: 500_000, used: 1, remain: 499_999 } })
  for (const q of ['', '?cgi_path=', '?cgi_path=cgi-bin/token', '?cgi_path=/a%20b', '?cgi_path=/x&other=1']) {
    t.equal((await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/quota${q}`, headers: auth() })).statusCode, 400, `refused: ${q}`)
  }
  const wechatRefused = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/quota?cgi_path=/unknown`, headers: auth() })
  t.equal(wechatRefused.statusCode, 200, 'an API WeChat does not count still answers (the simulator counts everything)')
})

t.test('rid: who caused an error, with tokens, codes and phone numbers scrubbed', async t => {
  const sim = await startSim(t)
  const { app, logs } = await build(t, testConfig({ wechatBaseUrl: sim.url }))
  const token = (await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })).json().access_token as string
  // Some service calls WeChat with a token that is not current, and gets a rid with its 40001.
  const failed = await (await fetch(`${sim.url}/wxa/business/getuserphonenumber?access_token=${token}x`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'phone-code-123', openid: 'o-1', note: 'call 13800138000' })
  })).json() as { errmsg: string }
  const rid = /rid: (\S+)/.exec(failed.errmsg)?.[1] as string
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/rid/${rid}`, headers: auth() })
  t.equal(res.statusCode, 200)
  const { request } = res.json() as { request: Record<string, string> }
  t.equal(request.request_url, 'access_token=***')
  t.match(request.request_body, /"code":"\*\*\*"/)
  t.match(request.request_body, /"openid":"o-1"/, 'what is not secret stays readable')
  t.notMatch(JSON.stringify(request), /13800138000|phone-code-123/, 'no phone number, no code')
  t.notMatch(JSON.stringify(request), token)
  t.match(request.response_body, /40001/)
  const unknown = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/rid/nope`, headers: auth() })
  t.equal(unknown.statusCode, 404, 'an unknown rid is the caller\'s mistake, not a 502')
  t.match(unknown.json(), { error: 'unknown_rid', wechat_errcode: 76001 })
  t.notOk(logs.lines().some(l => Number(l.level) >= 50), 'nothing logged at error')
  t.equal((await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/rid/a%20b`, headers: auth() })).statusCode, 400)
  t.notMatch(logs.text(), token)
})

t.test('the rid scrubber is an allow-list: only fields WeChat documents keep their values', async t => {
  t.equal(scrubUrl('access_token=abc&appid=wx1&secret=s'), 'access_token=***&appid=wx1&secret=***')
  t.equal(scrubUrl('https://api.weixin.qq.com/wxa/x?access_token=a&lang=zh_CN&refresh_token=r'), 'https://api.weixin.qq.com/wxa/x?access_token=***&lang=zh_CN&refresh_token=***')
  t.equal(scrubBody('{"errcode":0,"code":"c","phoneNumber":"+8613800138000","n":1}'), '{"errcode":0,"code":"***","phoneNumber":"***","n":"***"}')
  t.equal(scrubBody('{"refresh_token":"r","nested":{"openid":"o","authorizer_refresh_token":"x"},"list":["a",{"appid":"wx1"}]}'),
    '{"refresh_token":"***","nested":{"openid":"o","authorizer_refresh_token":"***"},"list":["***",{"appid":"wx1"}]}', 'names no deny-list foresaw')
  t.equal(scrubBody('{"errmsg":"call 13800138000 or +447700900123 \\"x\\""}'), '{"errmsg":"call *** or +447700900123 \\"x\\""}', 'escaped JSON parses; kept text still loses mainland numbers')
  t.equal(scrubBody('{"mobile":"+447700900123"}'), '{"mobile":"***"}', 'a foreign number in an unknown field goes too')
  t.equal(scrubBody('<html>13800138000 secret</html>'), '***', 'not JSON, not a query: replaced whole')
  t.equal(scrubBody('grant_type=client_credential&secret=s'), 'grant_type=client_credential&secret=***')
  t.same(scrubRidRecord({ invoke_time: 1, cost_in_ms: 2, client_ip: '1.2.3.4', request_url: 'a=1', request_body: '{}', response_body: '{"errcode":40001}', extra: 'x' }),
    { invoke_time: 1, cost_in_ms: 2, client_ip: '1.2.3.4', request_url: 'a=***', request_body: '{}', response_body: '{"errcode":40001}', extra: '***' })
})

t.test('quota/clear: admin clients only, logged with the client\'s name, counted', async t => {
  const sim = await startSim(t)
  const { app, logs } = await build(t, testConfig({ wechatBaseUrl: sim.url, clients }))
  const clear = async (token: string): Promise<{ statusCode: number, json: () => Record<string, unknown> }> =>
    await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/quota/clear`, headers: auth(token) })
  const refused = await clear(CLIENT_TOKEN)
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().error, 'forbidden')
  t.equal(sim.state.calls.clear_quota, 0, 'a non-admin never reaches WeChat')

  await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })
  const ok = await clear(ADMIN_TOKEN)
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { cleared: true })
  t.match((await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/quota?cgi_path=/cgi-bin/stable_token`, headers: auth() })).json(), { quota: { used: 0 } }, 'WeChat\'s counts were reset')
  t.equal(await metricValue(app, 'token_broker_quota_clears_total', { result: 'ok' }), 1)
  const line = logs.lines().find(l => /quota reset/.test(String(l.msg)))
  t.match(line, { appid: APPID, client: 'ops-oncall', level: 40 }, 'logged at warn with who did it')
  t.notMatch(logs.text(), SECRET, 'the appsecret it was sent with is not logged')

  for (let i = 1; i < 10; i++) await clear(ADMIN_TOKEN)
  const spent = await clear(ADMIN_TOKEN)
  t.equal(spent.statusCode, 429)
  t.same(spent.json(), { error: 'clear_quota_exhausted', message: 'WeChat allows 10 quota resets a month, and they are used up.', wechat_errcode: 48006 })
  t.equal(await metricValue(app, 'token_broker_quota_clears_total', { result: '48006' }), 1)
})
