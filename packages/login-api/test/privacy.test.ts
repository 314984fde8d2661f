import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { TEST_PII_KEYS, waitFor } from '@wxlogin/testing'
import { build, login, retryKey, testConfig } from './helper.js'
import { stack } from './stack.js'
import { loadConfig } from '../src/config.js'
import { newPiiKeyLine, parsePiiKeys, PiiCipher } from '../src/users/pii.js'

// Phone numbers are personal information (PIPL): sealed at rest, with rotation, and gone with
// the account when the user deletes it (WeChat requires 注销 of a mini-program with accounts).

/** Every key and value in a Redis, as text: where a phone number could sit. */
async function dump (url: string): Promise<Map<string, string>> {
  const c = createClient({ url })
  c.on('error', () => {})
  await c.connect()
  const out = new Map<string, string>()
  for await (const keys of c.scanIterator()) {
    for (const key of keys) {
      const type = await c.type(key)
      const value = type === 'string'
        ? await c.get(key)
        : type === 'set' ? JSON.stringify(await c.sMembers(key)) : type === 'stream' ? JSON.stringify(await c.xRange(key, '-', '+')) : type
      out.set(key, String(value))
    }
  }
  await c.quit()
  return out
}

t.test('phone numbers are sealed in the user record and in the kept phone answer; nowhere in clear', async t => {
  const { apps, redis, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const res = await login(app, { ...await mint('private', { phoneNumber: '13912345678' }), retry_key: retryKey() })
  t.equal(res.json().user.phone.purePhoneNumber, '13912345678', 'the user sees their number')
  const all = await dump(redis.url)
  const user = all.get(`wxlogin:user:${res.json().user.user_id as string}`) ?? ''
  t.match(JSON.parse(user).phone, /^pii1:test:/, 'the record holds a sealed value')
  for (const [key, value] of all) t.notMatch(value, /13912345678/, `no clear number in ${key}`)
  t.ok([...all.keys()].some(k => k.startsWith('wxlogin:exchange:phone:')), 'the kept phone answer is there, sealed')
})

t.test('a sealed number opens only in its own record, and only with a key the service holds', async t => {
  const cipher = new PiiCipher(parsePiiKeys(TEST_PII_KEYS))
  const sealed = cipher.seal({ purePhoneNumber: '1' }, 'user:a:phone')
  t.same(cipher.open(sealed, 'user:a:phone'), { purePhoneNumber: '1' })
  t.throws(() => cipher.open(sealed, 'user:b:phone'), 'moved to another user: does not open')
  t.throws(() => new PiiCipher(parsePiiKeys(newPiiKeyLine('other'))).open(sealed, 'user:a:phone'),
    { code: 'store_unavailable', statusCode: 503, detail: /key id test, which PII_ENCRYPTION_KEY_FILE does not hold/ }, 'a key no longer held: a 503 naming the key id in the log')
  t.same(cipher.open({ purePhoneNumber: 'clear' }, 'x'), { purePhoneNumber: 'clear' }, 'a record from before encryption reads as it is')
})

t.test('rotation: a new key on top; records sealed with the old key read, and are sealed again with the new one', async t => {
  const { apps, redis, mint } = await stack(t, 1)
  const first = await login(apps[0] as FastifyInstance, { ...await mint('rotating', { phoneNumber: '13700001111' }) })
  const userId = first.json().user.user_id as string
  const rotated = parsePiiKeys(`${newPiiKeyLine('k2')}\n${TEST_PII_KEYS}`)
  const { app } = await build(t, testConfig({ redis: redis.connection, piiKeys: rotated }))
  await waitFor(() => app.storeProblem() === undefined, { what: 'Redis connected' })
  t.equal((await app.users.getUser(userId))?.phone?.purePhoneNumber, '13700001111', 'the old key still decrypts')
  const stored = JSON.parse((await dump(redis.url)).get(`wxlogin:user:${userId}`) ?? '{}')
  t.match(stored.phone, /^pii1:k2:/, 'sealed again with the key that now encrypts')
  const { app: newOnly } = await build(t, testConfig({ redis: redis.connection, piiKeys: rotated.slice(0, 1) }))
  await waitFor(() => newOnly.storeProblem() === undefined, { what: 'Redis connected' })
  t.equal((await newOnly.users.getUser(userId))?.phone?.purePhoneNumber, '13700001111', 'so the old key can be removed')
})

t.test('a record written in clear before encryption is sealed on its next read', async t => {
  const { apps, redis } = await stack(t, 1)
  const c = createClient({ url: redis.url })
  await c.connect()
  t.teardown(async () => { await c.quit() })
  const clear = { user_id: 'legacy-1', unionid: null, nickname: 'Old', head_pic: null, phone: { phoneNumber: '13600002222', purePhoneNumber: '13600002222', countryCode: '86' }, identities: [], created_at: 'x', updated_at: 'x' }
  await c.set('wxlogin:user:legacy-1', JSON.stringify(clear))
  t.equal((await (apps[0] as FastifyInstance).users.getUser('legacy-1'))?.phone?.purePhoneNumber, '13600002222')
  t.match(JSON.parse(await c.get('wxlogin:user:legacy-1') ?? '{}').phone, /^pii1:test:/)
})

t.test('PII_ENCRYPTION_KEY_FILE: required with Redis, one key a line, refused when malformed', async t => {
  const base = { BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'tok-0123456789abcdef', WECHAT_APPID: 'wx0123456789' }
  t.equal(loadConfig(base).piiKeys, undefined, 'memory stores need none')
  t.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6390' }), /PII_ENCRYPTION_KEY_FILE is required with a persistent store/)
  t.equal(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6390', PII_ENCRYPTION_KEY: `${newPiiKeyLine('a')}\n${newPiiKeyLine('b')}` }).piiKeys?.length, 2)
  for (const bad of ['nokey', 'a:c2hvcnQ=', `a:${'A'.repeat(43)}= extra`, `${newPiiKeyLine('a')}\n${newPiiKeyLine('a')}`]) {
    t.throws(() => loadConfig({ ...base, PII_ENCRYPTION_KEY: bad }), /PII_ENCRYPTION_KEY_FILE/, JSON.stringify(bad.slice(0, 20)))
  }
})

t.test('DELETE /api/user/me: the user, identities, sessions, kept answers and limits go; a user.deleted event; the openid starts afresh', async t => {
  const { apps, redis, sim, mint } = await stack(t, 2)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const codes = await mint('leaving', { unionid: 'u-leaving', phoneNumber: '13500003333' })
  const key = retryKey()
  const first = await login(a, { ...codes, retry_key: key, nickname: 'Leaving' })
  const second = await login(b, { ...await mint('leaving', { unionid: 'u-leaving' }) })
  const token = first.json().token as string
  const userId = first.json().user.user_id as string
  const auth = { authorization: `Bearer ${token}` }

  for (const payload of [undefined, {}, { confirm: false }, { confirm: 'true' }]) {
    const res = await a.inject({ method: 'DELETE', url: '/api/user/me', headers: auth, ...(payload === undefined ? {} : { payload }) })
    t.equal(res.statusCode, 400, `refused without confirm: true (${JSON.stringify(payload)})`)
  }
  t.equal((await a.inject({ method: 'DELETE', url: '/api/user/me', payload: { confirm: true } })).statusCode, 401, 'needs a session')

  const gone = await a.inject({ method: 'DELETE', url: '/api/user/me', headers: auth, payload: { confirm: true } })
  t.equal(gone.statusCode, 204)
  for (const t2 of [token, second.json().token as string]) {
    t.equal((await b.inject({ url: '/api/user/me', headers: { authorization: `Bearer ${t2}` } })).statusCode, 401, 'every session ended')
  }
  const calls = { ...sim.state.calls }
  const replay = await login(b, { ...codes, retry_key: key })
  t.equal(replay.statusCode, 400, 'the kept answer no longer logs anyone in')
  t.same(sim.state.calls, calls)

  const all = await dump(redis.url)
  const left = [...all.keys()].filter(k => !k.startsWith('wxlogin:exchange:') && k !== 'wxlogin:events')
  const keyed = left.filter(k => /user|identity|unionid|session|ratelimit:-?phone/.test(k))
  t.same(keyed, [], `nothing keyed by the user remains: ${left.join(', ')}`)
  for (const [k, v] of all) {
    t.notMatch(v, /13500003333|Leaving/, `no phone or nickname left in ${k}`)
    if (k.startsWith('wxlogin:exchange:') && !k.endsWith(':reuses')) t.notMatch(v, /leaving/, `${k} holds no identity of the user`)
  }
  const events = JSON.parse(all.get('wxlogin:events') ?? '[]') as Array<{ message: Record<string, string> }>
  const deleted = events.filter(e => e.message.type === 'user.deleted')
  t.equal(deleted.length, 1)
  t.match(deleted[0]?.message, { user_id: userId, phone: '', unionid: '' })

  const again = await login(a, { ...await mint('leaving', { unionid: 'u-leaving' }) })
  t.equal(again.statusCode, 200)
  t.equal(again.json().is_new_user, true, 'the same WeChat user, a new account')
  t.not(again.json().user.user_id, userId)
  t.equal(again.json().user.nickname, null)
})

t.test('BROKER_URL over plain http to another host is warned about at start, unless loopback or BROKER_ALLOW_HTTP', async t => {
  const warning = /BROKER_URL is plain http to another host/
  const { logs } = await build(t, testConfig({ brokerUrl: 'http://broker.internal:3001' }))
  t.ok(logs.lines().some(l => warning.test(String(l.msg)) && l.level === 40), 'warned')
  for (const brokerUrl of ['http://127.0.0.1:3001', 'http://localhost:3001', 'http://[::1]:3001', 'https://broker.internal']) {
    const { logs: quiet } = await build(t, testConfig({ brokerUrl }))
    t.notOk(quiet.lines().some(l => warning.test(String(l.msg))), `no warning for ${brokerUrl}`)
  }
  const { logs: allowed } = await build(t, testConfig({ brokerUrl: 'http://broker.internal:3001', brokerAllowHttp: true }))
  t.notOk(allowed.lines().some(l => warning.test(String(l.msg))), 'BROKER_ALLOW_HTTP=true: said on purpose')
})
