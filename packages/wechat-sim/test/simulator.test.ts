import t from 'tap'
import { createSimulator, CONTROL_PREFIX } from '../src/app.js'
import { SimState } from '../src/state.js'

const APPID = 'wxsimtest000000001'
const SECRET = 'sim-secret'

function clock (start = 1_700_000_000_000): { now: () => number, advance: (ms: number) => void } {
  let now = start
  return { now: () => now, advance: (ms) => { now += ms } }
}

t.test('classic token: new token every call, previous one lives for the overlap only', async t => {
  const c = clock()
  const s = new SimState({ apps: [{ appid: APPID, secret: SECRET }], now: c.now, tokenExpiresIn: 7200, classicOverlapSeconds: 300 })
  const a = s.classicToken(APPID, SECRET, 'client_credential')
  const b = s.classicToken(APPID, SECRET, 'client_credential')
  t.ok(a.ok && b.ok)
  if (!a.ok || !b.ok) return
  t.not(a.value.access_token, b.value.access_token)
  t.equal(a.value.expires_in, 7200)
  t.ok(a.value.access_token.length >= 100, 'tokens are long, like WeChat\'s')
  t.same(s.checkAccessToken(a.value.access_token), { ok: true, value: APPID }, 'old token works inside the overlap')
  c.advance(301_000)
  t.same(s.checkAccessToken(a.value.access_token), { ok: false, errcode: 42001 }, 'old token expired after the overlap')
  t.same(s.checkAccessToken(b.value.access_token), { ok: true, value: APPID })
  c.advance(7200_000)
  t.same(s.checkAccessToken(b.value.access_token), { ok: false, errcode: 42001 }, 'tokens expire')
  t.same(s.checkAccessToken('nope'), { ok: false, errcode: 40001 })
  t.same(s.checkAccessToken(undefined), { ok: false, errcode: 41001 })
})

t.test('credential errors', async t => {
  const s = new SimState({ apps: [{ appid: APPID, secret: SECRET }] })
  t.same(s.classicToken(APPID, SECRET, 'nope'), { ok: false, errcode: 40002 })
  t.same(s.classicToken('wxother', SECRET, 'client_credential'), { ok: false, errcode: 40013 })
  t.same(s.classicToken(APPID, 'wrong', 'client_credential'), { ok: false, errcode: 40125 })
  t.same(s.stableToken('', SECRET, 'client_credential', false), { ok: false, errcode: 41002 })
  t.same(s.stableToken(APPID, '', 'client_credential', false), { ok: false, errcode: 41004 })
  t.same(s.code2session(APPID, 'wrong', 'x', 'authorization_code'), { ok: false, errcode: 40125 })
})

t.test('stable token: same token while valid, renewed near expiry, force mode limited', async t => {
  const c = clock()
  const s = new SimState({ apps: [{ appid: APPID, secret: SECRET }], now: c.now, tokenExpiresIn: 7200, stableRenewBeforeSeconds: 300 })
  const a = s.stableToken(APPID, SECRET, 'client_credential', false)
  c.advance(1000_000)
  const b = s.stableToken(APPID, SECRET, 'client_credential', false)
  if (!a.ok || !b.ok) return t.fail('expected tokens')
  t.equal(b.value.access_token, a.value.access_token)
  t.equal(b.value.expires_in, 6200)
  c.advance(6000_000)
  const renewed = s.stableToken(APPID, SECRET, 'client_credential', false)
  if (!renewed.ok) return t.fail('expected token')
  t.not(renewed.value.access_token, a.value.access_token, 'renewed inside the last 5 minutes')
  t.ok(s.checkAccessToken(a.value.access_token).ok, 'old stable token still valid until its own expiry')
  const forced = s.stableToken(APPID, SECRET, 'client_credential', true)
  if (!forced.ok) return t.fail('expected forced token')
  t.same(s.checkAccessToken(renewed.value.access_token), { ok: false, errcode: 42001 }, 'force invalidates the previous token')
  t.same(s.stableToken(APPID, SECRET, 'client_credential', true), { ok: false, errcode: 45011 }, 'force twice within 30 s')
  for (let i = 0; i < 19; i++) {
    c.advance(31_000)
    t.ok(s.stableToken(APPID, SECRET, 'client_credential', true).ok)
  }
  c.advance(31_000)
  t.same(s.stableToken(APPID, SECRET, 'client_credential', true), { ok: false, errcode: 45009 }, '21st force in a day')
})

t.test('login codes: single use, five minutes, per app', async t => {
  const c = clock()
  const s = new SimState({ apps: [{ appid: APPID, secret: SECRET }], now: c.now })
  const minted = s.mintLoginCode(APPID, 'openid-1', 'union-1')
  const r = s.code2session(APPID, SECRET, minted.code, 'authorization_code')
  t.match(r, { ok: true, value: { openid: 'openid-1', unionid: 'union-1', session_key: String } })
  t.same(s.code2session(APPID, SECRET, minted.code, 'authorization_code'), { ok: false, errcode: 40163 })
  const late = s.mintLoginCode(APPID)
  c.advance(300_001)
  t.same(s.code2session(APPID, SECRET, late.code, 'authorization_code'), { ok: false, errcode: 40029 })
  t.same(s.code2session(APPID, SECRET, 'unknown', 'authorization_code'), { ok: false, errcode: 40029 })
  const noUnion = s.mintLoginCode(APPID, 'openid-2', null)
  const r2 = s.code2session(APPID, SECRET, noUnion.code, 'authorization_code')
  t.ok(r2.ok && !('unionid' in r2.value), 'no unionid unless bound')
})

t.test('phone codes: single use, checked against token and openid, optional per-user limit', async t => {
  const c = clock()
  const s = new SimState({ apps: [{ appid: APPID, secret: SECRET }, { appid: 'wxother', secret: 'x' }], now: c.now, phoneLimitPerMinute: 2 })
  const tok = s.stableToken(APPID, SECRET, 'client_credential', false)
  const other = s.stableToken('wxother', 'x', 'client_credential', false)
  if (!tok.ok || !other.ok) return t.fail('tokens')
  const { code } = s.mintPhoneCode(APPID, '13800138000')
  t.same(s.phoneNumber(other.value.access_token, code, undefined), { ok: false, errcode: 40013 }, 'code of another app')
  const r = s.phoneNumber(tok.value.access_token, code, undefined)
  t.match(r, { ok: true, value: { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86', watermark: { appid: APPID } } })
  t.same(s.phoneNumber(tok.value.access_token, code, undefined), { ok: false, errcode: 40029 }, 'used')
  t.same(s.phoneNumber('bad', code, undefined), { ok: false, errcode: 40001 })
  const bound = s.mintPhoneCode(APPID, '13800138001', '86', 'openid-a')
  t.same(s.phoneNumber(tok.value.access_token, bound.code, 'openid-b'), { ok: false, errcode: 40029 }, 'bound to another user')
  t.same(s.phoneNumber(tok.value.access_token, 'x', 'openid-b'), { ok: false, errcode: 40029 }, 'second call for openid-b')
  t.same(s.phoneNumber(tok.value.access_token, 'x', 'openid-b'), { ok: false, errcode: 45011 }, 'third call for openid-b within a minute')
  c.advance(60_001)
  t.ok(s.phoneNumber(tok.value.access_token, bound.code, 'openid-a').ok)
  const expired = s.mintPhoneCode(APPID, '13800138002')
  c.advance(300_001)
  const fresh = s.stableToken(APPID, SECRET, 'client_credential', false)
  if (!fresh.ok) return t.fail('token')
  t.same(s.phoneNumber(fresh.value.access_token, expired.code, undefined), { ok: false, errcode: 40029 }, 'expired code')
  const intl = s.mintPhoneCode(APPID, '2025550123', '1')
  t.match(s.phoneNumber(fresh.value.access_token, intl.code, undefined), { ok: true, value: { phoneNumber: '+12025550123' } })
})

t.test('HTTP: the WeChat APIs with WeChat shapes, and the control API', async t => {
  const { app } = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  t.teardown(() => app.close())
  const stable = await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: { grant_type: 'client_credential', appid: APPID, secret: SECRET } })
  t.equal(stable.statusCode, 200)
  const token = stable.json().access_token as string
  const classic = await app.inject({ method: 'GET', url: `/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${SECRET}` })
  t.match(classic.json(), { access_token: String, expires_in: 7200 })
  const bad = await app.inject({ method: 'GET', url: `/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=no` })
  t.same(bad.json(), { errcode: 40125, errmsg: 'invalid appsecret' })

  const login = (await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/login-codes`, payload: { openid: 'o1', unionid: 'u1' } })).json()
  const session = await app.inject({ method: 'GET', url: `/sns/jscode2session?appid=${APPID}&secret=${SECRET}&js_code=${login.code}&grant_type=authorization_code` })
  t.match(session.json(), { openid: 'o1', unionid: 'u1', session_key: String })

  const phone = (await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/phone-codes`, payload: { phoneNumber: '13800138000' } })).json()
  const num = await app.inject({ method: 'POST', url: `/wxa/business/getuserphonenumber?access_token=${token}`, payload: { code: phone.code, openid: 'o1' } })
  t.match(num.json(), { errcode: 0, errmsg: 'ok', phone_info: { purePhoneNumber: '13800138000', countryCode: '86' } })

  const { apiConnections, ...calls } = (await app.inject(`${CONTROL_PREFIX}/calls`)).json()
  t.ok(apiConnections >= 1 && apiConnections <= 5, 'the connections that carried the 5 calls')
  t.same(calls, { token: 2, stable_token: 1, jscode2session: 1, getuserphonenumber: 1, getticket: 0, quota_get: 0, rid_get: 0, clear_quota: 0, getcallbackip: 0, charge_usage_get: 0, getuserriskrank: 0, abandoned: { token: 0, stable_token: 0, jscode2session: 0, getuserphonenumber: 0, getticket: 0, quota_get: 0, rid_get: 0, clear_quota: 0, getcallbackip: 0, charge_usage_get: 0, getuserriskrank: 0 }, reused_codes: { login: 0, phone: 0 }, exchanged_codes: { login: 1, phone: 1 }, forced_refreshes: 0 })
  // A code presented again after its exchange: WeChat refuses it, and the simulator counts it.
  await app.inject({ method: 'GET', url: `/sns/jscode2session?appid=${APPID}&secret=${SECRET}&js_code=${login.code}&grant_type=authorization_code` })
  await app.inject({ method: 'POST', url: `/wxa/business/getuserphonenumber?access_token=${token}`, payload: { code: phone.code, openid: 'o1' } })
  t.match((await app.inject(`${CONTROL_PREFIX}/calls`)).json(), { reused_codes: { login: 1, phone: 1 }, exchanged_codes: { login: 1, phone: 1 } })

  const bulk = (await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/login-codes`, payload: { count: 3 } })).json().codes as Array<{ code: string, openid: string }>
  t.equal(bulk.length, 3)
  t.equal(new Set(bulk.map(c => c.openid)).size, 3, 'each bulk code for its own openid')
  const phones = (await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/phone-codes`, payload: { phoneNumber: '13800138000', openids: bulk.map(c => c.openid) } })).json().codes as string[]
  t.equal(phones.length, 3)
  const bound = await app.inject({ method: 'POST', url: `/wxa/business/getuserphonenumber?access_token=${token}`, payload: { code: phones[0], openid: bulk[1]?.openid } })
  t.equal(bound.json().errcode, 40029, 'bulk phone codes are bound to their openid')

  const f = await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/faults`, payload: { api: 'stable_token', kind: 'errcode', errcode: -1, count: 2 } })
  t.equal(f.statusCode, 201)
  await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/faults`, payload: { api: 'stable_token', kind: 'status', status: 502 } })
  const body = { grant_type: 'client_credential', appid: APPID, secret: SECRET }
  t.same((await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).json(), { errcode: -1, errmsg: 'system error' })
  t.same((await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).json(), { errcode: -1, errmsg: 'system error' })
  t.equal((await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).statusCode, 502)
  t.equal((await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).json().access_token, token, 'faults used up')

  const rejected = await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/faults`, payload: { api: 'nope', kind: 'drop' } })
  t.equal(rejected.statusCode, 400)

  t.equal((await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/reset` })).statusCode, 204)
  t.same((await app.inject(`${CONTROL_PREFIX}/calls`)).json(), { token: 0, stable_token: 0, jscode2session: 0, getuserphonenumber: 0, getticket: 0, quota_get: 0, rid_get: 0, clear_quota: 0, getcallbackip: 0, charge_usage_get: 0, getuserriskrank: 0, abandoned: { token: 0, stable_token: 0, jscode2session: 0, getuserphonenumber: 0, getticket: 0, quota_get: 0, rid_get: 0, clear_quota: 0, getcallbackip: 0, charge_usage_get: 0, getuserriskrank: 0 }, apiConnections: 0, reused_codes: { login: 0, phone: 0 }, exchanged_codes: { login: 0, phone: 0 }, forced_refreshes: 0 })
  const after = await app.inject({ method: 'POST', url: `/wxa/business/getuserphonenumber?access_token=${token}`, payload: { code: 'x' } })
  t.equal(after.json().errcode, 40001, 'reset forgets tokens')

  // Revocation, as after a secret reset: the token answers 40001, the next token call issues another.
  const live = (await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).json().access_token as string
  t.match((await app.inject(`/cgi-bin/getcallbackip?access_token=${live}`)).json(), { ip_list: [String] }, 'getcallbackip: the cheap check')
  t.same((await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/revoke`, payload: { appid: APPID } })).json(), { revoked: 1 })
  t.equal((await app.inject(`/cgi-bin/getcallbackip?access_token=${live}`)).json().errcode, 40001)
  t.not((await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: body })).json().access_token, live, 'a new token after the revocation')
})

t.test('HTTP: latency and dropped connections on a real socket', async t => {
  const { app } = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  await fetch(`${base}${CONTROL_PREFIX}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api: 'token', kind: 'drop' }) })
  await t.rejects(fetch(`${base}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${SECRET}`), 'connection dropped')
  await fetch(`${base}${CONTROL_PREFIX}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api: 'token', kind: 'latency', latency_ms: 150 }) })
  const started = Date.now()
  const res = await fetch(`${base}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${SECRET}`)
  t.ok(Date.now() - started >= 140, 'latency applied')
  t.equal(res.status, 200)
})

t.test('a caller that hangs up during the latency: counted as abandoned, its code left unused', async t => {
  const { app } = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const { code } = (await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/login-codes`, payload: { openid: 'o-hangup' } })).json()
  await app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/faults`, payload: { api: 'jscode2session', kind: 'latency', latency_ms: 300, count: 1 } })
  const url = `${base}/sns/jscode2session?appid=${APPID}&secret=${SECRET}&js_code=${code as string}&grant_type=authorization_code`
  await t.rejects(fetch(url, { signal: AbortSignal.timeout(50) }))
  const calls = await waitForAbandoned(app)
  t.equal(calls.abandoned.jscode2session, 1)
  const later = await (await fetch(url)).json()
  t.equal(later.openid, 'o-hangup', 'the code was not spent by the abandoned call')
})

async function waitForAbandoned (app: ReturnType<typeof createSimulator>['app']): Promise<{ abandoned: Record<string, number> }> {
  for (;;) {
    const calls = (await app.inject(`${CONTROL_PREFIX}/calls`)).json()
    if (calls.abandoned.jscode2session > 0) return calls
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('HTTP: tickets, quota, rid and clear_quota as WeChat serves them', async t => {
  const { app } = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  t.teardown(() => app.close())
  const token = (await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: { grant_type: 'client_credential', appid: APPID, secret: SECRET } })).json().access_token as string

  const jsapi = (await app.inject(`/cgi-bin/ticket/getticket?access_token=${token}&type=jsapi`)).json()
  t.match(jsapi, { errcode: 0, errmsg: 'ok', ticket: String, expires_in: 7200 })
  t.equal((await app.inject(`/cgi-bin/ticket/getticket?access_token=${token}&type=jsapi`)).json().ticket, jsapi.ticket, 'the same ticket while it is valid')
  t.not((await app.inject(`/cgi-bin/ticket/getticket?access_token=${token}&type=wx_card`)).json().ticket, jsapi.ticket, 'one per type')
  t.equal((await app.inject(`/cgi-bin/ticket/getticket?access_token=${token}&type=nope`)).json().errcode, 40097)

  const quota = async (cgiPath: string): Promise<Record<string, unknown>> => (await app.inject({ method: 'POST', url: `/cgi-bin/openapi/quota/get?access_token=${token}`, payload: { cgi_path: cgiPath } })).json()
  t.same(await quota('/cgi-bin/stable_token'), { errcode: 0, errmsg: 'ok', quota: { daily_limit: 500_000, used: 1, remain: 499_999 } })
  t.match(await quota('/cgi-bin/ticket/getticket'), { quota: { used: 3 } }, 'the call refused for its arguments is not counted')
  t.equal((await quota('no-slash')).errcode, 76003)

  // An error answered to a token-bearing call carries a rid; rid/get tells what that call sent.
  const failed = (await app.inject({ method: 'POST', url: '/wxa/business/getuserphonenumber?access_token=wrong', payload: { code: 'c1' } })).json()
  t.equal(failed.errcode, 40001)
  const rid = /rid: (\S+)$/.exec(failed.errmsg)?.[1]
  t.ok(rid, `errmsg carries a rid: ${failed.errmsg}`)
  const info = (await app.inject({ method: 'POST', url: `/cgi-bin/openapi/rid/get?access_token=${token}`, payload: { rid } })).json()
  t.match(info, { errcode: 0, request: { request_url: 'access_token=wrong', request_body: '{"code":"c1"}', response_body: /40001/ } })
  t.equal((await app.inject({ method: 'POST', url: `/cgi-bin/openapi/rid/get?access_token=${token}`, payload: { rid: 'nope' } })).json().errcode, 76001)

  const clear = async (secret: string): Promise<number> => (await app.inject({ method: 'POST', url: '/cgi-bin/clear_quota/v2', payload: { appid: APPID, appsecret: secret } })).json().errcode
  t.equal(await clear('wrong'), 40125)
  t.equal(await clear(SECRET), 0)
  t.match(await quota('/cgi-bin/stable_token'), { quota: { used: 0 } }, 'counts start again')
  for (let i = 1; i < 10; i++) await clear(SECRET)
  t.equal(await clear(SECRET), 48006, 'ten a month')
})
