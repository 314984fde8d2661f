import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { freePort, startRedisServer, startServiceProcess, TEST_PII_KEYS, waitFor, type RedisServer, type ServiceProcess } from '@wxlogin/testing'
import { root } from '../helpers.js'

// A retry survives the death of the instance that asked. Real processes: the simulator, one
// broker, two login-apis, one Redis; an instance SIGKILLed while WeChat holds its code, and a
// Redis frozen between a claim and its release.

const APPID = 'wxinstancedeath001'
const SECRET = 'instance-death-secret'
const CLIENT_TOKEN = randomBytes(32).toString('base64url')

interface Proc { url: string, proc: ServiceProcess }

async function service (t: Test, script: string, env: Record<string, string>): Promise<Proc> {
  const port = await freePort()
  const proc = startServiceProcess(`${root}${script}`, { env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(await freePort()), LOG_LEVEL: 'warn', ...env } })
  t.teardown(async () => { await proc.stop() })
  const url = `http://127.0.0.1:${port}`
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => null))?.status === 200, { timeoutMs: 20_000, what: `${script} up` })
  return { url, proc }
}

const post = async (url: string, body: object): Promise<{ status: number, body: any }> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json().catch(() => null) }
}

async function stack (t: Test): Promise<{ redis: RedisServer, sim: string, logins: [Proc, Proc], calls: () => Promise<Record<string, number>> }> {
  const redis = await startRedisServer(t)
  const sim = (await service(t, 'packages/wechat-sim/dist/server.js', { SIM_APPS: JSON.stringify([{ appid: APPID, secret: SECRET }]) })).url
  const common = { WECHAT_APPID: APPID, WECHAT_API_BASE_URL: sim, WECHAT_API_ALLOW_HTTP: 'true', REDIS_URL: redis.url }
  const broker = await service(t, 'packages/token-broker/dist/server.js', { ...common, WECHAT_SECRET: SECRET, BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token: CLIENT_TOKEN, apps: [APPID] }]) })
  const loginEnv = { ...common, BROKER_URL: broker.url, BROKER_TOKEN: CLIENT_TOKEN, PII_ENCRYPTION_KEY: TEST_PII_KEYS, IP_RATE_LIMIT_MAX: '100000' }
  const logins = [await service(t, 'packages/login-api/dist/server.js', loginEnv), await service(t, 'packages/login-api/dist/server.js', loginEnv)] as [Proc, Proc]
  for (const l of logins) await waitFor(async () => (await fetch(`${l.url}/readyz`).catch(() => null))?.status === 200, { timeoutMs: 20_000, what: 'a login-api ready' })
  return { redis, sim, logins, calls: async () => await (await fetch(`${sim}/__sim/calls`)).json() as Record<string, number> }
}

async function codes (sim: string, openid: string): Promise<{ code: string, phoneCode: string }> {
  const code = (await post(`${sim}/__sim/login-codes`, { openid })).body.code as string
  const phoneCode = (await post(`${sim}/__sim/phone-codes`, { openid, phoneNumber: '13800138000' })).body.code as string
  return { code, phoneCode }
}

t.test('a login-api SIGKILLed while WeChat holds its code2session: the same body on another instance logs in, WeChat saw the code once', async t => {
  const { sim, logins: [a, b], calls } = await stack(t)
  const body = { ...await codes(sim, 'o-dies'), retry_key: randomBytes(16).toString('hex') }
  await post(`${sim}/__sim/faults`, { api: 'jscode2session', kind: 'latency', latency_ms: 2000, count: 1 })
  const lost = post(`${a.url}/api/user/thirdLogin`, body).catch(() => null)
  await waitFor(async () => (await calls()).jscode2session === 1, { what: 'code2session held at WeChat' })
  a.proc.child.kill('SIGKILL')
  await lost
  const started = Date.now()
  const retry = await post(`${b.url}/api/user/thirdLogin`, body)
  t.equal(retry.status, 200, `the retry logs in (${JSON.stringify(retry.body?.error ?? '')})`)
  t.equal(retry.body.user.openid, 'o-dies')
  t.equal(retry.body.user.phone?.purePhoneNumber, '13800138000')
  t.equal((await calls()).jscode2session, 1, 'WeChat saw the code once: the broker kept its answer')
  t.ok(Date.now() - started < 8000, `answered in ${Date.now() - started} ms`)
  const stranger = await post(`${b.url}/api/user/thirdLogin`, { code: body.code, retry_key: randomBytes(16).toString('hex') })
  t.equal(stranger.status, 400, 'the kept answers open nothing to another retry_key')
})

t.test('a login-api SIGKILLed while WeChat holds its phone exchange: the same body on another instance gets the number, WeChat saw the code once', async t => {
  const { sim, logins: [a, b], calls } = await stack(t)
  const body = { ...await codes(sim, 'o-phone-dies'), retry_key: randomBytes(16).toString('hex') }
  await post(`${sim}/__sim/faults`, { api: 'getuserphonenumber', kind: 'latency', latency_ms: 2000, count: 1 })
  const lost = post(`${a.url}/api/user/thirdLogin`, body).catch(() => null)
  await waitFor(async () => (await calls()).getuserphonenumber === 1, { what: 'getuserphonenumber held at WeChat' })
  a.proc.child.kill('SIGKILL')
  await lost
  const retry = await waitFor(async () => {
    const r = await post(`${b.url}/api/user/thirdLogin`, body)
    // Within the dead instance's 3 s lease the retry may be told to come back (as a client does).
    return r.status === 503 && r.body?.error === 'exchange_in_progress' ? undefined : r
  }, { timeoutMs: 20_000, what: 'the retry answered' })
  t.equal(retry.status, 200, `the retry logs in (${JSON.stringify(retry.body?.error ?? '')})`)
  t.equal(retry.body.user.phone?.purePhoneNumber, '13800138000', 'with the number WeChat billed')
  t.equal(retry.body.phone_error, null)
  t.equal((await calls()).getuserphonenumber, 1, 'WeChat saw the phone code once: the broker kept its number')
})

t.test('Redis frozen between a phone code\'s claim and its release: the next retry is answered within the lease, not the claim\'s old 17 s', async t => {
  const { sim, redis, logins: [a, b], calls } = await stack(t)
  const body = { ...await codes(sim, 'o-frozen'), retry_key: randomBytes(16).toString('hex') }
  await post(`${sim}/__sim/faults`, { api: 'getuserphonenumber', kind: 'latency', latency_ms: 1500, count: 1 })
  const first = post(`${a.url}/api/user/thirdLogin`, body)
  await waitFor(async () => (await calls()).getuserphonenumber === 1, { what: 'the phone exchange under way' })
  redis.signal('SIGSTOP')
  const answered = await first
  t.equal(answered.status, 503, 'the login could not be stored while Redis was frozen: a 503')
  redis.signal('SIGCONT')
  await waitFor(async () => (await fetch(`${b.url}/readyz`)).status === 200, { timeoutMs: 10_000, what: 'the store back' })
  const started = Date.now()
  const retry = await post(`${b.url}/api/user/thirdLogin`, body)
  const waited = Date.now() - started
  t.equal(retry.status, 200, 'the retry logs in')
  t.equal(retry.body.user.phone?.purePhoneNumber, '13800138000', 'with the number: the broker kept it once Redis was back')
  t.equal((await calls()).getuserphonenumber, 1, 'WeChat saw the phone code once')
  t.ok(waited < 3000 + 2000, `answered in ${waited} ms: within the 3 s lease (plus a margin), where the claim used to hold the code for 2 x broker + 2 x WeChat timeouts + 1 s`)
})
