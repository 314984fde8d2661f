// WeChat's message push at the broker. Pushes are made with @wecom/crypto, an implementation of
// WeChat's message crypto independent of ours; Redis is real where durability is the point.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { encrypt, getSignature } from '@wecom/crypto'
import type { FastifyInstance } from 'fastify'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { decryptPush, PushDecryptError, pushSignature } from '../src/push/push-crypto.js'
import { buildPushServer } from '../src/push/push-server.js'
import type { PushConfig } from '../src/push/push-config.js'
import { APPID, auth, build, metricValue, testConfig } from './helper.js'

const TOKEN = 'pushToken123'
const AES_KEY = randomBytes(32).toString('base64').slice(0, 43)
const EVENTS_TOKEN = 'client-token-events-consumer-0123456789'
const OTHER_EVENTS_TOKEN = 'client-token-events-second-0123456789ab'

const revokeXml = (openid: string, at: number): string =>
  `<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
  `<CreateTime>${at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_authorization_revoke]]></Event>` +
  `<OpenID><![CDATA[${openid}]]></OpenID><AppID><![CDATA[${APPID}]]></AppID><RevokeInfo><![CDATA[8]]></RevokeInfo></xml>`

const pushConfig = (overrides: Partial<PushConfig> = {}): PushConfig => ({
  apps: new Map([[APPID, { token: TOKEN, aesKey: Buffer.from(`${AES_KEY}=`, 'base64') }]]),
  visibilityMs: 300,
  retentionMs: 3_600_000,
  ...overrides
})

const clients = [
  { name: 'login-api', token: 'client-token-login-api-0123456789', apps: ['*'], admin: false },
  { name: 'crm', token: EVENTS_TOKEN, apps: ['*'], admin: false, events: ['user_authorization_revoke'] },
  { name: 'audit', token: OTHER_EVENTS_TOKEN, apps: ['*'], admin: false, events: ['*'] }
]

async function pushStack (t: Test, redisConnection?: ReturnType<typeof testConfig>['redis']): Promise<{ app: FastifyInstance, push: FastifyInstance }> {
  const config = testConfig({ push: pushConfig(), clients, ...(redisConnection === undefined ? {} : { redis: redisConnection, redlock: [redisConnection] }) })
  const { app } = await build(t, config)
  await app.ready()
  const push = buildPushServer({ push: config.push as PushConfig, store: app.wechatEvents, metrics: app.pushMetrics, log: app.log })
  t.teardown(() => push.close())
  return { app, push }
}

/** A push as WeChat sends it, in plaintext or safe mode (XML or JSON), signed. */
function wechatPush (message: string, mode: 'plain' | 'safe' | 'compatible', json = false, timestamp = String(Math.floor(Date.now() / 1000))): { url: string, payload: string, headers: Record<string, string> } {
  const nonce = randomBytes(6).toString('hex')
  const signature = getSignature(TOKEN, timestamp, nonce, '')
  const query = new URLSearchParams({ signature, timestamp, nonce })
  let payload = message
  if (mode !== 'plain') {
    const ciphered = encrypt(AES_KEY, message, APPID)
    query.set('encrypt_type', 'aes')
    query.set('msg_signature', getSignature(TOKEN, timestamp, nonce, ciphered))
    payload = json
      ? JSON.stringify({ ToUserName: 'gh_test', Encrypt: ciphered })
      : `<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[${ciphered}]]></Encrypt>${mode === 'compatible' ? message.replace(/^<xml>|<\/xml>$/g, '') : ''}</xml>`
  }
  return { url: `/wechat/push/${APPID}?${query.toString()}`, payload, headers: { 'content-type': json ? 'application/json' : 'text/xml' } }
}

t.test('the crypto agrees with an independent implementation (@wecom/crypto)', async t => {
  const key = Buffer.from(`${AES_KEY}=`, 'base64')
  for (const message of ['', 'a', revokeXml('o-1', 1), '中文'.repeat(100)]) {
    t.equal(decryptPush(key, encrypt(AES_KEY, message, APPID), APPID), message, `${message.length} characters`)
  }
  t.equal(pushSignature(TOKEN, '1700000000', 'nonce'), getSignature(TOKEN, '1700000000', 'nonce', ''))
  t.equal(pushSignature(TOKEN, '1700000000', 'nonce', 'cipher'), getSignature(TOKEN, '1700000000', 'nonce', 'cipher'))
  t.throws(() => decryptPush(key, encrypt(AES_KEY, 'x', 'wxsomeoneelse0001'), APPID), PushDecryptError, 'another app\'s message')
  t.throws(() => decryptPush(randomBytes(32), encrypt(AES_KEY, 'x', APPID), APPID), PushDecryptError, 'another key')
})

t.test('the push listener: URL verification, the three modes, XML and JSON, resends stored once, and nothing else served', async t => {
  const { app, push } = await pushStack(t)
  const nonce = 'n0nce'
  const timestamp = String(Math.floor(Date.now() / 1000))
  const verify = await push.inject({ url: `/wechat/push/${APPID}?signature=${getSignature(TOKEN, timestamp, nonce, '')}&timestamp=${timestamp}&nonce=${nonce}&echostr=echo123` })
  t.same([verify.statusCode, verify.body], [200, 'echo123'], 'the console\'s URL check')
  const forged = await push.inject({ url: `/wechat/push/${APPID}?signature=${'0'.repeat(40)}&timestamp=${timestamp}&nonce=${nonce}&echostr=echo123` })
  t.equal(forged.statusCode, 401)
  t.notMatch(forged.body, /echo123/)

  const now = Math.floor(Date.now() / 1000)
  const sent = [
    wechatPush(revokeXml('o-plain', now), 'plain'),
    wechatPush(revokeXml('o-safe', now), 'safe'),
    wechatPush(revokeXml('o-compat', now), 'compatible'),
    wechatPush(JSON.stringify({ ToUserName: 'gh_test', FromUserName: 'o-json', CreateTime: now, MsgType: 'event', Event: 'user_info_modified', OpenID: 'o-json', AppID: APPID }), 'safe', true)
  ]
  for (const p of sent) {
    const res = await push.inject({ method: 'POST', ...p })
    t.same([res.statusCode, res.body], [200, 'success'], p.url.includes('encrypt_type') ? 'encrypted' : 'plaintext')
  }
  // WeChat resends when it did not hear success in time: the same message, signed afresh.
  const resend = await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-safe', now), 'safe') })
  t.same([resend.statusCode, resend.body], [200, 'success'])
  t.equal(await metricValue(app, 'token_broker_push_messages_total', { appid: APPID, result: 'stored' }), 4)
  t.equal(await metricValue(app, 'token_broker_push_messages_total', { appid: APPID, result: 'duplicate' }), 1)

  const receive = await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth(OTHER_EVENTS_TOKEN), payload: { max: 10 } })
  t.equal(receive.statusCode, 200)
  const messages = receive.json().messages as Array<{ openid: string, event: string, message: Record<string, unknown> }>
  t.same(messages.map(m => m.openid), ['o-plain', 'o-safe', 'o-compat', 'o-json'], 'each stored once, in order')
  t.match(messages[1], { event: 'user_authorization_revoke', message: { RevokeInfo: '8', OpenID: 'o-safe' } }, 'decrypted, as JSON')

  const bad = [
    ['a wrong signature', { ...wechatPush(revokeXml('o-x', now), 'plain'), url: `/wechat/push/${APPID}?signature=${'a'.repeat(40)}&timestamp=${now}&nonce=x` }, 401],
    ['a stale timestamp', wechatPush(revokeXml('o-x', now - 3600), 'safe', false, String(now - 3600)), 400],
    ['not a push', wechatPush('<xml><Nothing/></xml>', 'safe'), 400],
    ['a body over 64 KiB', wechatPush(`<xml>${'x'.repeat(70_000)}</xml>`, 'plain'), 413]
  ] as const
  for (const [what, p, status] of bad) t.equal((await push.inject({ method: 'POST', ...p })).statusCode, status, what)
  const tampered = wechatPush(revokeXml('o-x', now), 'safe')
  t.equal((await push.inject({ method: 'POST', ...tampered, url: tampered.url.replace(/msg_signature=[0-9a-f]+/, `msg_signature=${'b'.repeat(40)}`) })).statusCode, 401, 'a ciphertext not signed with it')
  t.equal((await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-x', now), 'plain'), url: `/wechat/push/wxunknownapp00001?signature=x&timestamp=${now}&nonce=x` })).statusCode, 404)
  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', `/v1/apps/${APPID}/access-token`, '/cgi-bin/token']) {
    t.equal((await push.inject({ url })).statusCode, 404, `the push port serves no ${url}`)
  }
  t.equal(await metricValue(app, 'token_broker_push_messages_total', { appid: APPID, result: 'bad_signature' }), 3)
})

for (const store of ['memory', 'Redis'] as const) {
  t.test(`${store}: each client its cursor; unacknowledged messages come again after the visibility timeout; filters`, async t => {
    const redis = store === 'Redis' ? await startRedisServer(t) : undefined
    const { app, push } = await pushStack(t, redis?.connection)
    if (redis !== undefined) await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'broker ready' })
    const now = Math.floor(Date.now() / 1000)
    await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-1', now), 'safe') })
    await push.inject({ method: 'POST', ...wechatPush(JSON.stringify({ FromUserName: 'o-2', CreateTime: now, MsgType: 'event', Event: 'user_info_modified', OpenID: 'o-2' }), 'safe', true) })
    const receive = async (token: string, body: object = {}): Promise<Array<{ id: string, openid: string }>> => {
      const res = await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth(token), payload: body })
      t.equal(res.statusCode, 200)
      return res.json().messages
    }
    const ack = async (token: string, ids: string[]): Promise<number> =>
      (await app.inject({ method: 'POST', url: '/v1/wechat-events/ack', headers: auth(token), payload: { ids } })).statusCode

    const crm = await receive(EVENTS_TOKEN)
    t.same(crm.map(m => m.openid), ['o-1'], 'crm takes only user_authorization_revoke')
    t.same(await receive(EVENTS_TOKEN), [], 'in flight: not again before the visibility timeout')
    const audit = await receive(OTHER_EVENTS_TOKEN, { max: 1 })
    t.same(audit.map(m => m.openid), ['o-1'], 'audit has its own cursor, and max')
    t.equal(await ack(OTHER_EVENTS_TOKEN, audit.map(m => m.id)), 204)
    t.same((await receive(OTHER_EVENTS_TOKEN)).map(m => m.openid), ['o-2'])

    const again = await waitFor(async () => {
      const m = await receive(EVENTS_TOKEN)
      return m.length > 0 ? m : undefined
    }, { what: 'the unacknowledged message delivered again' })
    t.same(again.map(m => m.id), crm.map(m => m.id), 'the same message, again: at least once')
    t.equal(await ack(EVENTS_TOKEN, again.map(m => m.id)), 204)
    await new Promise(resolve => setTimeout(resolve, 400))
    t.same(await receive(EVENTS_TOKEN), [], 'acknowledged: never again')

    const started = Date.now()
    const waited = app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth(EVENTS_TOKEN), payload: { wait_seconds: 5 } })
    await new Promise(resolve => setTimeout(resolve, 200))
    await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-3', now + 1), 'plain') })
    const long = await waited
    t.same(long.json().messages.map((m: { openid: string }) => m.openid), ['o-3'], 'a long poll answers when a push arrives')
    t.ok(Date.now() - started < 4000)

    t.equal((await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth('client-token-login-api-0123456789'), payload: {} })).statusCode, 403, 'a client without events')
    t.equal((await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', payload: {} })).statusCode, 401)
    t.equal((await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth(EVENTS_TOKEN), payload: { max: 1000 } })).statusCode, 400)
    t.equal(await ack(EVENTS_TOKEN, ['not-an-id']), 400)
  })
}

t.test('Redis frozen while a push arrives: no success; the resend is stored once Redis is back', async t => {
  const redis = await startRedisServer(t)
  const { app, push } = await pushStack(t, redis.connection)
  await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'broker ready' })
  const now = Math.floor(Date.now() / 1000)
  redis.signal('SIGSTOP')
  let first
  try {
    first = await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-frozen', now), 'safe') })
  } finally {
    redis.signal('SIGCONT')
  }
  t.equal(first.statusCode, 503, 'not success: WeChat will resend')
  t.not(first.body, 'success')
  await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'Redis back' })
  const resend = await waitFor(async () => {
    const r = await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-frozen', now), 'safe') })
    return r.body === 'success' ? r : undefined
  }, { what: 'the resend stored' })
  t.equal(resend.statusCode, 200)
  await push.inject({ method: 'POST', ...wechatPush(revokeXml('o-frozen', now), 'safe') })
  const got = await app.inject({ method: 'POST', url: '/v1/wechat-events/receive', headers: auth(OTHER_EVENTS_TOKEN), payload: {} })
  t.same(got.json().messages.map((m: { openid: string }) => m.openid), ['o-frozen'], 'stored once')
})

t.test('charge_service_quota_notify sets the phone-billing gauges, as the usage poll does', async t => {
  const config = testConfig({ push: pushConfig(), clients })
  const { app } = await build(t, config)
  await app.ready()
  const push = buildPushServer({ push: config.push as PushConfig, store: app.wechatEvents, metrics: app.pushMetrics, quota: app.quotaGauges, log: app.log })
  t.teardown(() => push.close())
  const now = Math.floor(Date.now() / 1000)
  const message = JSON.stringify({ ToUserName: 'gh_test', FromUserName: 'o_push_service', CreateTime: now, MsgType: 'event', Event: 'charge_service_quota_notify', spu_id: '10000077', total_quota: 1000, total_used_quota: 950, OpenID: 'system' })
  t.equal((await push.inject({ method: 'POST', ...wechatPush(message, 'safe', true) })).body, 'success')
  t.equal(await metricValue(app, 'wechat_charge_quota_used', { appid: APPID, spu: '10000077' }), 950)
  t.equal(await metricValue(app, 'wechat_charge_quota_total', { appid: APPID, spu: '10000077' }), 1000)
})
