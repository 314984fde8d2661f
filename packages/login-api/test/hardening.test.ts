import t from 'tap'
import { readFileSync } from 'node:fs'
import { createClient } from 'redis'
import { maskPhone } from '@wxlogin/service-kit'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { APPID, BROKER, broker, build, login, testConfig, useNock } from './helper.js'

const aclTemplate = readFileSync(new URL('../../../deploy/redis/users.acl.template', import.meta.url), 'utf8')

t.test('TRUST_PROXY=1: the client is the address the one trusted proxy saw, whatever the client wrote', async t => {
  useNock(t)
  const { app } = await build(t, testConfig({ ipRateLimitMax: 60, trustProxy: { kind: 'hops', hops: 1 } }))
  const codes: number[] = []
  for (let i = 0; i < 61; i++) {
    // The ingress appends the address it saw (203.0.113.7); the left-most entry is the client's own.
    const res = await login(app, {}, { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.7` })
    codes.push(res.statusCode)
  }
  t.same(codes.slice(0, 60), Array(60).fill(400), 'the first 60 reach the handler (and fail validation)')
  t.equal(codes[60], 429, 'the 61st is over the per-IP limit: spoofed left-most entries do not help')
  const other = await login(app, {}, { 'x-forwarded-for': '203.0.113.8' })
  t.equal(other.statusCode, 400, 'another real client has its own budget')
})

t.test('TRUST_PROXY as a list: the client is the first untrusted hop, and never a string a client made up', async t => {
  useNock(t)
  const { app } = await build(t, testConfig({ ipRateLimitMax: 1, trustProxy: { kind: 'list', entries: ['10.0.0.0/8'] } }))
  const from = (xff: string, remoteAddress = '10.0.0.1'): Promise<number> =>
    app.inject({ method: 'POST', url: '/api/user/thirdLogin', payload: {}, headers: { 'x-forwarded-for': xff }, remoteAddress }).then(r => r.statusCode)
  t.equal(await from('1.1.1.1, 192.0.2.5, 10.0.0.9'), 400)
  t.equal(await from('2.2.2.2, 192.0.2.5, 10.0.0.9'), 429, 'same first untrusted hop (192.0.2.5): same bucket')
  t.equal(await from('192.0.2.6, 10.0.0.9'), 400, 'another first untrusted hop: its own bucket')
  t.equal(await from('1.1.1.1', '192.0.2.99'), 400, 'an untrusted peer: its own address, its header ignored')
  t.equal(await from('3.3.3.3', '192.0.2.99'), 429)
  // A trusted proxy forwarding garbage: the key falls back to the socket peer, not the string.
  t.equal(await from('<script>, 10.0.0.9', '10.0.0.77'), 400)
  t.equal(await from('another-made-up-key, 10.0.0.9', '10.0.0.77'), 429, 'garbage entries share the proxy\'s bucket')
})

t.test('input edges: refused before any WeChat call', async t => {
  useNock(t) // no interceptors: a call to the broker or WeChat would be a 503, not a 400
  const { app } = await build(t)
  const bad: Array<[string, object]> = [
    ['a lone surrogate in nickname (Redis\'s JSON cannot store it)', { code: 'c', nickname: 'Ann\ud800' }],
    ['a control character in nickname', { code: 'c', nickname: 'Ann\u0007' }],
    ['a bidi override in nickname', { code: 'c', nickname: 'abc\u202Egpj.exe' }],
    ['a line separator (U+2028) in nickname: it ends a log line', { code: 'c', nickname: 'Ann\u2028forged log line' }],
    ['a paragraph separator (U+2029) in nickname', { code: 'c', nickname: 'Ann\u2029' }],
    ['a quote in head_pic', { code: 'c', head_pic: 'https://img.example/a.png"onerror=x' }],
    ['angle brackets in head_pic', { code: 'c', head_pic: 'https://img.example/<script>' }]
  ]
  for (const [what, body] of bad) {
    const res = await login(app, body)
    t.equal(res.statusCode, 400, what)
    t.equal(res.json().error, 'invalid_body', what)
  }
  const emoji = await app.inject({ method: 'POST', url: '/api/user/phone', payload: { phoneCode: 'p', extra: 1 }, headers: { authorization: 'Bearer ' + 'a'.repeat(43) } })
  t.equal(emoji.statusCode, 401, 'a session is checked before the body')
})

t.test('well-formed names with emoji, ZWJ sequences and CJK still pass', async t => {
  const nock = useNock(t)
  broker.session(nock, 'c', 'openid-emoji')
  const { app } = await build(t)
  const nickname = '小明👨‍👩‍👧 Zoë'
  const res = await login(app, { code: 'c', nickname })
  t.equal(res.statusCode, 200)
  t.equal(res.json().user.nickname, nickname)
})

t.test('answers from the broker and WeChat are checked', async t => {
  const nock = useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).reply(200, { openid: '', unionid: null })
  const { app } = await build(t)
  const empty = await login(app, { code: 'c' })
  t.equal(empty.statusCode, 503, 'an empty openid is refused, never stored as a user')
  t.equal(empty.json().error, 'upstream_unavailable')

  // (The watermark naming another app is the broker's to refuse: token-broker/test/phone-number.test.ts.)
  broker.session(nock, 'c2', 'openid-wm')
  broker.phone(nock, 'pc', 'openid-wm').reply(200, { phone_info: { purePhoneNumber: 13800138000 } })
  const res = await login(app, { code: 'c2', phoneCode: 'pc' })
  t.equal(res.statusCode, 200, 'the login itself succeeds')
  t.equal(res.json().user.phone, null, 'a malformed phone_info is not stored')
  t.equal(res.json().phone_error.error, 'upstream_unavailable')
})

t.test('public messages name no internals; /me is not cacheable', async t => {
  const nock = useNock(t)
  nock.enableNetConnect('127.0.0.1')
  const { app: refused, logs: refusedLogs } = await build(t, testConfig({ brokerUrl: 'http://127.0.0.1:1' }))
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).reply(401, { error: 'unauthorized', message: 'A valid client token is required' })
  const { app, logs } = await build(t)
  for (const a of [refused, app]) {
    const res = await login(a, { code: 'c' })
    t.equal(res.statusCode, 503)
    t.notMatch(res.body, /ECONNREFUSED|unauthori[sz]ed|broker/i, 'the mini-program learns only that a service is unavailable')
  }
  t.match(refusedLogs.text(), /ECONNREFUSED/, 'the operator\'s log has the cause')
  t.match(logs.text(), /answered 401 unauthorized/, 'including a misconfigured BROKER_TOKEN')

  broker.session(nock, 'c3', 'openid-me')
  const token = (await login(app, { code: 'c3' })).json().token
  const me = await app.inject({ url: '/api/user/me', headers: { authorization: `Bearer ${token as string}` } })
  t.equal(me.headers['cache-control'], 'no-store')
})

t.test('maskPhone never shows more than half of a number', async t => {
  t.equal(maskPhone('13812348000'), '138****8000')
  for (const n of ['12345678', '1234567', '123456', '12345']) {
    const shown = maskPhone(n).replace(/\*/g, '').length
    t.ok(shown <= Math.floor(n.length / 2), `${n.length} digits: ${maskPhone(n)}`)
  }
})

t.test('Redis down: 503 store_unavailable before the login code is spent', async t => {
  const nock = useNock(t)
  const redis = await startRedisServer(t)
  nock(BROKER).get('/healthz').reply(200, { status: 'ok' }).persist()
  const { app } = await build(t, testConfig({ redis: redis.connection }))
  await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: 'ready' })
  await redis.stop()
  const session = broker.session(nock, 'unspent', 'openid-x')
  await waitFor(async () => (await app.inject('/readyz')).statusCode === 503, { what: 'not ready' })
  const res = await login(app, { code: 'unspent' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'store_unavailable')
  t.notOk(session.isDone(), 'code2session was never called: the code is still good')
})

t.test('a frozen Redis (SIGSTOP): 503 within 3 s, /readyz says so; SIGCONT: recovers without a restart', async t => {
  const nock = useNock(t)
  const redis = await startRedisServer(t)
  nock(BROKER).get('/healthz').reply(200, { status: 'ok' }).persist()
  const { app } = await build(t, testConfig({ redis: redis.connection }))
  broker.session(nock, 'before', 'openid-frozen')
  await waitFor(async () => (await login(app, { code: 'before' })).statusCode === 200, { what: 'a login before the freeze' })

  redis.signal('SIGSTOP')
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).reply(200, { openid: 'openid-frozen', unionid: null }).persist()
  const started = Date.now()
  const res = await login(app, { code: 'during' })
  const elapsed = Date.now() - started
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'store_unavailable')
  t.ok(elapsed < 3000, `answered in ${elapsed} ms, not hung`)
  const ready = await waitFor(async () => {
    const r = await app.inject('/readyz')
    return r.statusCode === 503 ? r.json() : null
  }, { what: '/readyz to fail' })
  t.match(ready.message, /redis/, '/readyz names the store')

  redis.signal('SIGCONT')
  await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: '/readyz to recover' })
  const after = await login(app, { code: 'after' })
  t.equal(after.statusCode, 200, 'logins work again on the same process')
})

t.test('Redis ACLs (deploy/redis/users.acl.template): the login-api user cannot touch the broker\'s keys', async t => {
  const redis = await startRedisServer(t)
  const admin = createClient({ url: redis.url })
  admin.on('error', () => {})
  await admin.connect()
  t.teardown(async () => { await admin.quit().catch(() => {}) })
  const passwords: Record<string, string> = { 'login-api': 'login-api-test-password', 'token-broker': 'token-broker-test-password', replica: 'replica-test-password', sentinel: 'sentinel-test-password' }
  for (const line of aclTemplate.split('\n')) {
    const m = /^user (\S+) (.*)$/.exec(line.trim())
    if (m === null || m[1] === 'default') continue
    const [, name, rules] = m as unknown as [string, string, string]
    const pw = passwords[name] as string
    await admin.sendCommand(['ACL', 'SETUSER', name, 'reset', ...rules.replace(/#\{\{[A-Z0-9_]+\}\}/, `>${pw}`).split(/\s+/)])
  }
  const as = async (user: string): Promise<ReturnType<typeof createClient>> => {
    const c = createClient({ url: redis.url, username: user, password: passwords[user] as string })
    c.on('error', () => {})
    await c.connect()
    t.teardown(async () => { await c.quit().catch(() => {}) })
    return c
  }
  const loginApi = await as('login-api')
  await t.rejects(loginApi.set('wxbroker:{wx1}:token', JSON.stringify({ token: 'forged', expiresAt: Date.now() + 7e6, seq: 1e15 })), /NOPERM/, 'cannot plant a broker token')
  await t.rejects(loginApi.get('wxbroker:{wx1}:token'), /NOPERM/, 'cannot read a broker token')
  await t.rejects(loginApi.publish('wxbroker:{wx1}:token-updated', 'wx1'), /NOPERM/, 'cannot publish on the broker\'s channel')
  await t.rejects(loginApi.sendCommand(['FLUSHALL']), /NOPERM/)
  const brokerUser = await as('token-broker')
  await t.rejects(brokerUser.set('wxlogin:session:x', '{}'), /NOPERM/, 'the broker cannot forge a session either')
  // Commands the services never send, that would list the other's names or replace code.
  for (const [who, c] of [['login-api', loginApi], ['token-broker', brokerUser]] as const) {
    for (const cmd of [['SCAN', '0'], ['RANDOMKEY'], ['PUBSUB', 'CHANNELS'], ['PUBSUB', 'SHARDCHANNELS'], ['FUNCTION', 'LOAD', "#!lua name=x\nredis.register_function('f', function() return 1 end)"], ['FUNCTION', 'FLUSH'], ['SCRIPT', 'FLUSH'], ['SCRIPT', 'LOAD', 'return 1']]) {
      await t.rejects(c.sendCommand(cmd), /NOPERM/, `${who}: ${cmd.slice(0, 2).join(' ')} is refused`)
    }
    t.equal(await c.sendCommand(['EVAL', 'return 1', '0']), 1, `${who}: EVAL still runs`)
  }

  // The whole login works under the restricted user: Lua upsert, sessions, rate limits.
  const nock = useNock(t)
  broker.session(nock, 'acl-code', 'openid-acl')
  broker.phone(nock, 'acl-phone', 'openid-acl').reply(200, broker.phoneInfo())
  nock(BROKER).get('/healthz').reply(200, { status: 'ok' }).persist()
  // waitReplicas: the INFO and WAIT of a durable write are allowed too (no replica here: no WAIT).
  const { app } = await build(t, testConfig({ redis: { ...redis.connection, username: 'login-api', password: passwords['login-api'], waitReplicas: 1 } }))
  await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: 'ready under ACLs' })
  const res = await login(app, { code: 'acl-code', phoneCode: 'acl-phone' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().user.phone.purePhoneNumber, '13800138000')
  const me = await app.inject({ url: '/api/user/me', headers: { authorization: `Bearer ${res.json().token as string}` } })
  t.equal(me.statusCode, 200)
})
