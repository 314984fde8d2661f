import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { createSimulator, type Simulator } from '@wxlogin/wechat-sim'
import { freePort, startRedisServer, waitFor } from '@wxlogin/testing'
import { RedisTokenStore } from '../src/token-store.js'
import type { BrokerConfig } from '../src/config.js'
import { APPID, CLIENT_TOKEN, SECRET, auth, build, metricValue, testConfig } from './helper.js'

const TOKEN_URL = `/v1/apps/${APPID}/access-token`

async function startSim (t: Test, opts: Parameters<typeof createSimulator>[0] = {}): Promise<Simulator & { url: string }> {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }], ...opts })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  return { ...sim, url: `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}` }
}

/** Broker replicas sharing Redis, each ready (connected) before the test starts. */
async function replicas (t: Test, n: number, config: Partial<BrokerConfig>): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  for (let i = 0; i < n; i++) apps.push((await build(t, testConfig(config))).app)
  for (const app of apps) await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'replica ready (connected to Redis)' })
  return apps
}

const getToken = async (app: FastifyInstance): Promise<{ status: number, token: string }> => {
  const res = await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  return { status: res.statusCode, token: res.json().access_token }
}

const invalidate = async (app: FastifyInstance, stale: string): Promise<{ status: number, token: string }> => {
  const res = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: stale } })
  return { status: res.statusCode, token: res.json().access_token }
}

t.test('500 concurrent cold requests over 3 replicas: exactly one upstream call', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { latencyMs: 50 })
  const apps = await replicas(t, 3, { redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url })
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => await getToken(apps[i % 3] as FastifyInstance)))
  t.equal(sim.state.calls.stable_token, 1, 'one upstream token call cluster-wide')
  t.ok(results.every(r => r.status === 200), 'all 500 served')
  t.equal(new Set(results.map(r => r.token)).size, 1, 'all got the same token')
  let upstream = 0
  for (const app of apps) upstream += await metricValue(app, 'token_broker_refreshes_total', { result: 'ok' })
  t.equal(upstream, 1)
  let waited = 0
  for (const app of apps) waited += await metricValue(app, 'token_broker_lock_wait_seconds_count')
  t.ok(waited >= 1, 'lock waits were measured')
})

t.test('200 concurrent invalidations of one stale token over 3 replicas: one upstream call', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { latencyMs: 30 })
  const apps = await replicas(t, 3, { redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url })
  const stale = (await getToken(apps[0] as FastifyInstance)).token
  for (const app of apps) t.equal((await getToken(app)).token, stale, 'every replica holds the stale token')
  const before = sim.state.calls.stable_token
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => await invalidate(apps[i % 3] as FastifyInstance, stale)))
  t.equal(sim.state.calls.stable_token - before, 1, 'one (forced) upstream call')
  t.ok(results.every(r => r.status === 200))
  const fresh = new Set(results.map(r => r.token))
  t.equal(fresh.size, 1, 'everyone got the same new token')
  t.notOk(fresh.has(stale))
  const [current] = [...fresh]

  const late = await invalidate(apps[2] as FastifyInstance, stale)
  t.equal(late.token, current, 'an old token gets the current one back')
  t.equal(sim.state.calls.stable_token - before, 1, 'without an upstream call')
  for (const app of apps) {
    await waitFor(async () => (await getToken(app)).token === current, { what: 'replica adopts the new token (pub/sub)' })
  }
})

t.test('forced refreshes are spaced out cluster-wide', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a, b] = await replicas(t, 2, { redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url, forceRefreshIntervalMs: 60_000 }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  const second = await invalidate(a, first.token)
  t.equal(second.status, 200)
  const callsAfterForce = sim.state.calls.stable_token
  const third = await invalidate(b, second.token)
  t.equal(third.status, 429, 'another replica may not force again within the interval')
  t.equal(sim.state.calls.stable_token, callsAfterForce, 'and WeChat was not called')
})

t.test('the token store never lets an older refresh overwrite a newer token', async t => {
  const redis = await startRedisServer(t)
  const client = createClient({ url: redis.url })
  const sub = client.duplicate()
  client.on('error', () => {})
  sub.on('error', () => {})
  await client.connect()
  await sub.connect()
  t.teardown(async () => { await client.quit(); await sub.quit() })
  const store = new RedisTokenStore(client, sub, 'test:')
  const older = await store.nextSeq(APPID)
  const newer = await store.nextSeq(APPID)
  t.ok(newer > older, 'sequence increases')
  t.ok(older >= Date.now() - 5000, 'and is never behind the clock')
  t.equal(await store.setIfNewer(APPID, { token: 'newer', expiresAt: Date.now() + 60_000, seq: newer }), true)
  t.equal(await store.setIfNewer(APPID, { token: 'older', expiresAt: Date.now() + 90_000, seq: older }), false, 'older refused')
  t.equal((await store.get(APPID))?.token, 'newer')
  const ttl = await client.pTTL('test:token:' + APPID)
  t.ok(ttl > 0 && ttl <= 60_000, 'the key expires with the token')
})

t.test('Redlock over 3 servers with one down: refresh still works, once', async t => {
  const [r1, r2, r3] = await Promise.all([startRedisServer(t), startRedisServer(t), startRedisServer(t)])
  const sim = await startSim(t, { latencyMs: 20 })
  const urls = [r1.url, r2.url, r3.url]
  const apps = await replicas(t, 2, { redisUrl: r1.url, redlockUrls: urls, wechatBaseUrl: sim.url })
  await r3.stop()
  for (const app of apps) {
    await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'still ready with 2 of 3 lock servers' })
  }
  const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => await getToken(apps[i % 2] as FastifyInstance)))
  t.ok(results.every(r => r.status === 200))
  t.equal(sim.state.calls.stable_token, 1, 'one upstream call with 2 of 3 lock servers')
  const inv = await Promise.all(Array.from({ length: 20 }, async (_, i) => await invalidate(apps[i % 2] as FastifyInstance, results[0]?.token ?? '')))
  t.ok(inv.every(r => r.status === 200 && r.token !== results[0]?.token))
  t.equal(sim.state.calls.stable_token, 2, 'one more for the invalidation')
})

t.test('all Redis down: cached token still served, misses go upstream once per process; recovers when Redis returns', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a, b] = await replicas(t, 2, { redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  t.equal(first.status, 200)

  await redis.stop()
  await waitFor(async () => (await a.inject('/readyz')).json().status === 'degraded', { what: 'readiness reports Redis down' })
  const ready = await a.inject('/readyz')
  t.equal(ready.statusCode, 200, 'still ready: it serves from memory')
  t.match(ready.json(), { status: 'degraded', checks: { redis: /degraded: redis unreachable/ } })
  const cached = await Promise.all(Array.from({ length: 20 }, async () => await getToken(a)))
  t.ok(cached.every(r => r.status === 200 && r.token === first.token), 'served from memory')
  t.equal(sim.state.calls.stable_token, 1, 'no upstream call for a cached token')

  // A replica that starts while Redis is down has nothing cached at all.
  const { app: c } = await build(t, testConfig({ redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url }))
  const cold = await Promise.all(Array.from({ length: 20 }, async () => await getToken(c)))
  t.ok(cold.every(r => r.status === 200), 'a cold replica still serves')
  t.equal(sim.state.calls.stable_token, 2, 'through its in-process single flight: one call')

  await redis.start()
  await waitFor(async () => (await a.inject('/readyz')).json().status === 'ready', { what: 'recovered without a restart', timeoutMs: 15_000 })
  await waitFor(async () => (await b.inject('/readyz')).json().status === 'ready', { what: 'b recovered', timeoutMs: 15_000 })
  const inv = await invalidate(a, first.token)
  t.equal(inv.status, 200)
  t.not(inv.token, first.token)
  await waitFor(async () => (await getToken(b)).token === inv.token, { what: 'b hears of the new token through Redis again' })
})

t.test('a replica killed with SIGKILL while holding the lock: another refreshes once the lock expires', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  // The first upstream call hangs: the child will hold the lock when it dies.
  sim.faults.add('stable_token', { kind: 'latency', latencyMs: 60_000 }, 1)
  const port = await freePort()
  const child = spawn(process.execPath, [fileURLToPath(new URL('../dist/server.js', import.meta.url))], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
      WECHAT_APPID: APPID,
      WECHAT_SECRET: SECRET,
      BROKER_CLIENTS: JSON.stringify([{ name: 'test', token: CLIENT_TOKEN, apps: ['*'] }]),
      WECHAT_API_BASE_URL: sim.url,
      REDIS_URL: redis.url,
      TOKEN_LOCK_TTL_MS: '1500'
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await (await fetch(`${base}/readyz`)).json() as { status: string }).status === 'ready', { what: 'child broker ready' })
  const pending = fetch(`${base}${TOKEN_URL}`, { headers: auth() }).catch(() => null)
  await waitFor(() => sim.state.calls.stable_token === 1, { what: 'child is calling upstream under the lock' })
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
  await pending

  const [survivor] = await replicas(t, 1, { redisUrl: redis.url, redlockUrls: [redis.url], wechatBaseUrl: sim.url, lockTtlMs: 1500 }) as [FastifyInstance]
  const started = Date.now()
  const res = await getToken(survivor)
  t.equal(res.status, 200, 'the survivor got a token')
  t.equal(sim.state.calls.stable_token, 2, 'by one more upstream call')
  t.ok(Date.now() - started < 10_000)
  t.ok(await metricValue(survivor, 'token_broker_lock_wait_seconds_count') >= 1, 'it waited for the lock')
})
