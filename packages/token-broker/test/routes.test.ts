import t from 'tap'
import { sha256Hex } from '@wxlogin/service-kit'
import { APPID, CLIENT_TOKEN, OTHER_CLIENT_TOKEN, SECRET, WX, auth, build, metricValue, testConfig, tokenReply, useNock } from './helper.js'

const TOKEN_URL = `/v1/apps/${APPID}/access-token`

t.test('auth: 401 without or with a wrong token, 403 for another app, 404 for an unknown app', async t => {
  useNock(t)
  const { app } = await build(t)
  const cases: Array<[Record<string, string>, string, number, string]> = [
    [{}, TOKEN_URL, 401, 'unauthorized'],
    [{ authorization: 'Bearer wrong-token-0123456789' }, TOKEN_URL, 401, 'unauthorized'],
    [{ authorization: `Basic ${CLIENT_TOKEN}` }, TOKEN_URL, 401, 'unauthorized'],
    [{ authorization: 'Bearer' }, TOKEN_URL, 401, 'unauthorized'],
    [auth(OTHER_CLIENT_TOKEN), TOKEN_URL, 403, 'forbidden'],
    [auth(), '/v1/apps/wxnotheld000000001/access-token', 404, 'unknown_app'],
    [{}, '/v1/apps/wxnotheld000000001/access-token', 401, 'unauthorized']
  ]
  for (const [headers, url, status, error] of cases) {
    const res = await app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, status, `${JSON.stringify(headers)} ${url}`)
    t.equal(res.json().error, error)
    t.type(res.json().message, 'string')
  }
  const bad = await app.inject({ method: 'GET', url: '/v1/apps/not%20an%20appid/access-token', headers: auth() })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error, 'invalid_body')
})

t.test('a token rotates with no moment where callers fail: the old and the new one both authenticate, by hash', async t => {
  useNock(t)
  const old = 'rotating-client-token-old-0123456789'
  const next = 'rotating-client-token-new-0123456789'
  const { app } = await build(t, testConfig({ clients: [{ name: 'rotating', tokenHashes: [sha256Hex(old), sha256Hex(next)], apps: [APPID], admin: false }] }))
  for (const token of [old, next]) {
    const res = await app.inject({ url: `/v1/apps/${APPID}/quota?cgi_path=`, headers: auth(token) })
    t.equal(res.statusCode, 400, 'authenticated (then refused for its query, before any WeChat call)')
  }
  t.equal((await app.inject({ url: `/v1/apps/${APPID}/quota?cgi_path=`, headers: auth(CLIENT_TOKEN) })).statusCode, 401, 'a token not listed is not')
})

t.test('refused callers are visible: counted by route and errcode, logged at warn (rate-limited), never with their token', async t => {
  const { app, logs } = await build(t)
  const wrong = 'a-wrong-client-token-0123456789abcdef'
  for (let i = 0; i < 100; i++) {
    const res = await app.inject({ url: `/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${wrong}${i}` })
    t.equal(res.json().errcode, 40125)
  }
  await app.inject({ method: 'POST', url: '/cgi-bin/stable_token', payload: { grant_type: 'client_credential', appid: APPID, secret: wrong } })
  for (let i = 0; i < 5; i++) await app.inject({ url: `/v1/apps/${APPID}/access-token`, headers: auth(wrong) })
  await app.inject({ url: `/v1/apps/${APPID}/access-token`, headers: auth(OTHER_CLIENT_TOKEN) })
  t.equal(await metricValue(app, 'token_broker_auth_failures_total', { route: '/cgi-bin/token', errcode: '40125' }), 100)
  t.equal(await metricValue(app, 'token_broker_auth_failures_total', { route: '/cgi-bin/stable_token', errcode: '40125' }), 1)
  t.equal(await metricValue(app, 'token_broker_auth_failures_total', { route: '/v1/apps/:appid/access-token', errcode: 'unauthorized' }), 5)
  t.equal(await metricValue(app, 'token_broker_auth_failures_total', { route: '/v1/apps/:appid/access-token', errcode: 'forbidden' }), 1)
  const warned = logs.lines().filter(l => l.msg === 'client authentication failed')
  t.equal(warned.length, 4, 'one line per route and errcode, not one per request')
  t.ok(warned.every(l => l.level === 40))
  t.notMatch(logs.text(), wrong, 'the token a caller sent is never logged')
})

t.test('GET access-token: upstream once, then from memory; contract shape and no-store', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token').once().reply(200, tokenReply('tok-first'))
  const { app } = await build(t)
  const first = await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  t.equal(first.statusCode, 200)
  t.equal(first.headers['cache-control'], 'no-store')
  const body = first.json()
  t.equal(body.access_token, 'tok-first')
  t.ok(body.expires_in > 7190 && body.expires_in <= 7200)
  t.ok(Math.abs(Date.parse(body.expires_at) - (Date.now() + body.expires_in * 1000)) < 2000)
  t.match(body.expires_at, /Z$/)
  const second = await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  t.equal(second.json().access_token, 'tok-first')
  t.ok(scope.isDone())
  t.equal(await metricValue(app, 'token_broker_token_requests_total', { source: 'upstream' }), 1)
  t.equal(await metricValue(app, 'token_broker_token_requests_total', { source: 'memory' }), 1)
  t.equal(await metricValue(app, 'token_broker_refreshes_total', { reason: 'miss', result: 'ok' }), 1)
  t.ok(await metricValue(app, 'token_broker_token_expiry_timestamp_seconds', { appid: APPID }) > Date.now() / 1000)
})

t.test('concurrent cold requests in one process: one upstream call', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token').once().delay(30).reply(200, tokenReply('tok-shared'))
  const { app } = await build(t)
  const all = await Promise.all(Array.from({ length: 50 }, async () => await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })))
  t.ok(all.every(r => r.statusCode === 200 && r.json().access_token === 'tok-shared'))
  t.ok(scope.isDone())
})

t.test('invalidate: compare-and-refresh (stable mode forces a new token)', async t => {
  const nock = useNock(t)
  nock(WX).post('/cgi-bin/stable_token', (b: Record<string, unknown>) => b.force_refresh === false).once().reply(200, tokenReply('tok-old'))
  const forced = nock(WX).post('/cgi-bin/stable_token', (b: Record<string, unknown>) => b.force_refresh === true).once().reply(200, tokenReply('tok-new'))
  const { app } = await build(t)
  await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  const inv = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'tok-old' } })
  t.equal(inv.statusCode, 200)
  t.equal(inv.json().access_token, 'tok-new')
  t.equal(inv.headers['cache-control'], 'no-store')
  t.ok(forced.isDone())
  // The rejected token is no longer current: the current one, no upstream call (none is mocked).
  const again = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'tok-old' } })
  t.equal(again.json().access_token, 'tok-new')
  t.equal(await metricValue(app, 'token_broker_refreshes_total', { reason: 'invalidated' }), 1)
})

t.test('invalidate: forced refreshes of a stable token are spaced out (a looping caller cannot spend WeChat\'s 20 a day)', async t => {
  const nock = useNock(t)
  nock(WX).post('/cgi-bin/stable_token', (b: Record<string, unknown>) => b.force_refresh === false).once().reply(200, tokenReply('s-1'))
  const forced = nock(WX).post('/cgi-bin/stable_token', (b: Record<string, unknown>) => b.force_refresh === true).once().reply(200, tokenReply('s-2'))
  const { app } = await build(t, testConfig({ forceRefreshIntervalMs: 60_000 }))
  await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  t.equal((await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 's-1' } })).json().access_token, 's-2')
  const again = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 's-2' } })
  t.equal(again.statusCode, 429)
  t.equal(again.json().error, 'refresh_throttled')
  t.equal(again.headers['retry-after'], '60')
  t.ok(forced.isDone(), 'one forced call; none for the second invalidation')
  t.equal((await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).json().access_token, 's-2', 'the current token is still served')
})

t.test('invalidate: classic mode refreshes with a plain token call', async t => {
  const nock = useNock(t)
  nock(WX).get('/cgi-bin/token').query(true).reply(200, tokenReply('c-1'))
  nock(WX).get('/cgi-bin/token').query(true).reply(200, tokenReply('c-2'))
  const { app } = await build(t, testConfig({ apps: [{ appid: APPID, secret: SECRET, tokenMode: 'classic' }] }))
  t.equal((await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).json().access_token, 'c-1')
  const inv = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'c-1' } })
  t.equal(inv.json().access_token, 'c-2')
})

t.test('invalidate: WeChat issuing the rejected token again is an error, not a loop', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token').times(3).reply(200, tokenReply('same'))
  const { app } = await build(t)
  await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  const inv = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'same' } })
  t.equal(inv.statusCode, 502)
  t.equal(inv.json().error, 'wechat_error')
  t.ok(scope.isDone(), 'bounded: the first fetch and two forced attempts')
})

t.test('invalidate: body validated', async t => {
  useNock(t)
  const { app } = await build(t)
  for (const payload of [{}, { access_token: '' }, { access_token: 5 }, 'not json']) {
    const res = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: { ...auth(), 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().error, 'invalid_body')
  }
})

t.test('refresh failures are remembered: a wrong secret reaches WeChat once', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token').once().reply(200, { errcode: 40125, errmsg: 'invalid appsecret' })
  const { app } = await build(t)
  const results = []
  for (let i = 0; i < 5; i++) results.push(await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() }))
  for (const r of results) {
    t.equal(r.statusCode, 502)
    t.same(r.json(), { error: 'wechat_error', message: 'WeChat refused the app credentials (errcode 40125).', wechat_errcode: 40125 })
  }
  t.ok(scope.isDone())
})

t.test('refresh-ahead: a token near expiry is served while one refresh runs in the background', async t => {
  const nock = useNock(t)
  nock(WX).get('/cgi-bin/token').query(true).once().reply(200, tokenReply('short-lived', 100))
  const ahead = nock(WX).get('/cgi-bin/token').query(true).once().delay(20).reply(200, tokenReply('renewed', 7200))
  const { app } = await build(t, testConfig({ refreshAheadSeconds: 300, apps: [{ appid: APPID, secret: SECRET, tokenMode: 'classic' }] }))
  t.equal((await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).json().access_token, 'short-lived')
  const during = await Promise.all(Array.from({ length: 10 }, async () => await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })))
  t.ok(during.every(r => r.json().access_token === 'short-lived'), 'callers keep getting the valid token')
  await app.tokens.drain()
  t.ok(ahead.isDone(), 'exactly one background refresh')
  t.equal((await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).json().access_token, 'renewed')
  t.equal(await metricValue(app, 'token_broker_refreshes_total', { reason: 'ahead', result: 'ok' }), 1)
})

t.test('code2session through HTTP: openid/unionid only; errcodes mapped', async t => {
  const nock = useNock(t)
  nock(WX).get('/sns/jscode2session').query({ appid: APPID, secret: SECRET, js_code: 'good', grant_type: 'authorization_code' })
    .reply(200, { openid: 'o-1', session_key: 'SESSION-KEY-SECRET', unionid: 'u-1' })
  nock(WX).get('/sns/jscode2session').query(true).reply(200, { errcode: 40163, errmsg: 'code been used' })
  nock(WX).get('/sns/jscode2session').query(true).reply(200, { errcode: 45011, errmsg: 'too frequent' })
  const { app } = await build(t)
  const url = `/v1/apps/${APPID}/code2session`
  const ok = await app.inject({ method: 'POST', url, headers: auth(), payload: { js_code: 'good' } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { openid: 'o-1', unionid: 'u-1' })
  t.notMatch(ok.body, 'SESSION-KEY-SECRET')
  const used = await app.inject({ method: 'POST', url, headers: auth(), payload: { js_code: 'used' } })
  t.same([used.statusCode, used.json().error, used.json().wechat_errcode], [400, 'invalid_code', 40163])
  const limited = await app.inject({ method: 'POST', url, headers: auth(), payload: { js_code: 'x' } })
  t.same([limited.statusCode, limited.json().error, limited.headers['retry-after']], [429, 'rate_limited', '60'])
  const bad = await app.inject({ method: 'POST', url, headers: auth(), payload: { js_code: 'has space' } })
  t.equal(bad.statusCode, 400)
  const unauth = await app.inject({ method: 'POST', url, payload: { js_code: 'x' } })
  t.equal(unauth.statusCode, 401)
})

t.test('secrets never reach logs, error bodies or metrics', async t => {
  const nock = useNock(t)
  nock(WX).post('/cgi-bin/stable_token').reply(200, tokenReply('ACCESS-TOKEN-SHOULD-NOT-BE-LOGGED'))
  nock(WX).post('/cgi-bin/stable_token').times(4).replyWithError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))
  nock(WX).get('/sns/jscode2session').query(true).reply(200, { openid: 'o', session_key: 'SESSION-KEY-X' })
  const { app, logs } = await build(t, testConfig({ failureMemoryMs: 0 }))
  const bodies: string[] = []
  bodies.push((await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).body)
  bodies.push((await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'ACCESS-TOKEN-SHOULD-NOT-BE-LOGGED' } })).body)
  bodies.push((await app.inject({ method: 'POST', url: `/v1/apps/${APPID}/code2session`, headers: auth(), payload: { js_code: 'abc' } })).body)
  bodies.push((await app.inject({ method: 'GET', url: TOKEN_URL, headers: { authorization: 'Bearer guessed-token-000000' } })).body)
  t.match(bodies[1], /upstream_unavailable/, 'the failed refresh answered')
  const metrics = await app.registry.metrics()
  const logText = logs.text()
  t.ok(logText.length > 0, 'logs were captured')
  for (const secret of [SECRET, CLIENT_TOKEN, 'SESSION-KEY-X', 'guessed-token-000000']) {
    t.notOk(logText.includes(secret), `logs free of ${secret.slice(0, 8)}…`)
    t.notOk(metrics.includes(secret), 'metrics free of it')
    for (const b of bodies) t.notOk(b.includes(secret), 'bodies free of it')
  }
  t.notOk(logText.includes('ACCESS-TOKEN-SHOULD-NOT-BE-LOGGED'), 'logs free of the access_token')
  t.notOk(bodies.slice(1).some(b => b.includes('ACCESS-TOKEN-SHOULD-NOT-BE-LOGGED')), 'error bodies free of it')
})

t.test('health, readiness, unknown routes', async t => {
  useNock(t)
  const { app } = await build(t)
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  const nf = await app.inject('/nope')
  t.equal(nf.statusCode, 404)
  t.equal(nf.json().error, 'not_found')
})

t.test('authentication comes before validation: an unknown caller learns nothing about the schemas', async t => {
  useNock(t)
  const { app } = await build(t)
  for (const [url, payload] of [[`${TOKEN_URL}/invalidate`, { wrong: 1 }], [`/v1/apps/${APPID}/code2session`, { js_code: 42 }], ['/v1/apps/not%20an%20appid/code2session', {}]] as const) {
    const res = await app.inject({ method: 'POST', url, payload })
    t.equal(res.statusCode, 401, url)
    t.same(Object.keys(res.json()).sort(), ['error', 'message'])
    t.equal(res.json().error, 'unauthorized')
    t.notMatch(res.body, /body\/|must|property|params/i)
  }
  const extra = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: 'x', debug: true } })
  t.equal(extra.statusCode, 400, 'an authenticated caller gets the validation error, unknown properties included')
})
