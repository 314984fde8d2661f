// Replicas under faults (Redis down or frozen, a lock server down, a replica SIGKILLed holding the
// lock): long by nature, so in `pnpm test:faults`, not in every contributor's `pnpm test`.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { freePort, startRedisServer, startServiceProcess, waitFor } from '@wxlogin/testing'
import { APPID, CLIENT_TOKEN, SECRET, auth, build, metricValue, testConfig } from '../helper.js'
import { TOKEN_URL, startSim, replicas, getToken, invalidate } from '../replica-helpers.js'

t.test('Redlock over 3 servers with one down: refresh still works, once', async t => {
  const [r1, r2, r3] = await Promise.all([startRedisServer(t), startRedisServer(t), startRedisServer(t)])
  const sim = await startSim(t, { latencyMs: 20 })
  const urls = [r1.connection, r2.connection, r3.connection]
  const apps = await replicas(t, 2, { redis: r1.connection, redlock: urls, wechatBaseUrl: sim.url })
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
  const [a, b] = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  t.equal(first.status, 200)

  await redis.stop()
  await waitFor(async () => (await a.inject('/readyz')).json().status === 'degraded', { what: 'readiness reports Redis down' })
  const ready = await a.inject('/readyz')
  t.equal(ready.statusCode, 200, 'still ready: it serves from memory')
  t.match(ready.json(), { status: 'degraded', checks: { redis: /degraded: redis server unreachable/ } })
  const cached = await Promise.all(Array.from({ length: 20 }, async () => await getToken(a)))
  t.ok(cached.every(r => r.status === 200 && r.token === first.token), 'served from memory')
  t.equal(sim.state.calls.stable_token, 1, 'no upstream call for a cached token')

  // A replica that starts while Redis is down has nothing cached at all.
  const { app: c } = await build(t, testConfig({ redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url }))
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

t.test('a replica killed with SIGKILL while holding the lock: another refreshes within the lock\'s 3 s', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  // The first upstream call hangs: the child will hold the lock when it dies.
  sim.faults.add('stable_token', { kind: 'latency', latencyMs: 60_000 }, 1)
  const port = await freePort()
  const child = startServiceProcess(fileURLToPath(new URL('../../dist/server.js', import.meta.url)), {
    stderr: 'inherit',
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
      WECHAT_API_ALLOW_HTTP: 'true',
      REDIS_URL: redis.url
      // TOKEN_LOCK_TTL_MS at its default (3 s): the lock outlives its dead holder by no more.
    }
  })
  t.teardown(async () => { await child.stop('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await (await fetch(`${base}/readyz`)).json() as { status: string }).status === 'ready', { what: 'child broker ready' })
  const pending = fetch(`${base}${TOKEN_URL}`, { headers: auth() }).catch(() => null)
  await waitFor(() => sim.state.calls.stable_token === 1, { what: 'child is calling upstream under the lock' })
  await child.stop('SIGKILL')
  await pending

  const killedAt = Date.now()
  const [survivor] = await replicas(t, 1, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, lockTtlMs: 3000 }) as [FastifyInstance]
  const res = await getToken(survivor)
  t.equal(res.status, 200, 'the survivor got a token')
  t.equal(sim.state.calls.stable_token, 2, 'by one more upstream call')
  // A bound, not a measurement: the lock's 3 s plus the survivor's start and one upstream call.
  // Before the lock was short and extended, this took the old 20 s lifetime.
  t.ok(Date.now() - killedAt < 8000, `served ${Date.now() - killedAt} ms after the holder died`)
  t.ok(await metricValue(survivor, 'token_broker_lock_wait_seconds_count') >= 1, 'it waited for the lock')
})

t.test('a frozen Redis (SIGSTOP): the broker degrades within seconds and serves from memory; SIGCONT: recovers', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a] = await replicas(t, 1, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url }) as [FastifyInstance]
  const token = (await getToken(a)).token
  redis.signal('SIGSTOP')
  const degraded = await waitFor(async () => {
    const r = await a.inject('/readyz')
    return r.json().status === 'degraded' ? r : null
  }, { what: 'readiness to degrade' })
  t.equal(degraded.statusCode, 200, 'still in rotation: it serves')
  t.match(degraded.json().checks.redis, /not answering|unreachable/)
  const started = Date.now()
  t.equal((await getToken(a)).token, token, 'the cached token is served from memory')
  t.ok(Date.now() - started < 1000, 'without waiting on Redis')
  redis.signal('SIGCONT')
  await waitFor(async () => (await a.inject('/readyz')).json().status === 'ready', { what: 'readiness to recover' })
})

t.test('Redis down and the token revoked: a replica asks WeChat for the current stable token before forcing, so it never invalidates its sibling\'s fresh one', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a, b] = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, forceRefreshIntervalMs: 0 }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  t.equal((await getToken(b)).token, first.token)
  await redis.stop()
  await waitFor(async () => (await b.inject('/readyz')).json().status === 'degraded', { what: 'Redis down for both' })
  sim.state.revoke(APPID, undefined)
  const fromA = await invalidate(a, first.token)
  t.equal(fromA.status, 200)
  t.not(fromA.token, first.token, 'A replaced the revoked token')
  t.equal(sim.state.forcedRefreshes, 0, 'WeChat had no current token after the revocation: A\'s normal-mode call issued one')
  // B still holds the revoked token in memory; a force from B would invalidate A's.
  const fromB = await invalidate(b, first.token)
  t.equal(fromB.status, 200)
  t.equal(fromB.token, fromA.token, 'B gets the token A has, from WeChat, without forcing')
  t.equal(sim.state.forcedRefreshes, 0, 'no force refresh at all')
  const works = await sim.app.inject(`/cgi-bin/getcallbackip?access_token=${fromA.token}`)
  t.notOk('errcode' in works.json(), 'A\'s token still works at WeChat')
  // The same token WeChat still answers: then, and only then, a force.
  const again = await invalidate(a, fromA.token)
  t.equal(again.status, 200)
  t.not(again.token, fromA.token)
  t.equal(sim.state.forcedRefreshes, 1, 'forced once, when WeChat answered the rejected token itself')
})
