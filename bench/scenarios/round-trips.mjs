import http from 'node:http'
import net from 'node:net'
import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { redisCommand, startCluster, startSentinelTopology } from '../../packages/testing/dist/redis-topologies.js'
import { startPostgresServer } from '../../packages/testing/dist/sql-servers.js'
import { freePort, TEST_PII_KEYS } from '../../packages/testing/dist/ports.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { broker, loginApi, post, quick, redisServers, row, sim, spawnNode, stopAll, timedPost } from '../lib/harness.mjs'

// 7. Sequential Redis round trips per login, measured black-box: a proxy that delays every
// packet between the login-api and Redis. (p50 with the delay - p50 without) / (2 x delay) is
// the number of round trips a login waits on one after another. In single, Sentinel and Cluster
// mode: there the servers announce the proxies' ports (Sentinel's monitor address, Cluster's
// cluster-announce-port), so every client connection goes through one. 7a: login latency with
// WeChat 50 ms away and Redis and the broker 0 or 1 ms away. 7b: users in PostgreSQL
// (DATABASE_URL), the proxy in front of Redis, then in front of PostgreSQL.

const DELAY_MS = 10

async function proxy (targetPort, delayMs) {
  const port = await freePort()
  spawnNode('bench/latency-proxy-server.mjs', { LISTEN_PORT: String(port), TARGET_PORT: String(targetPort), DELAY_MS: String(delayMs) })
  // Listening: a TCP connection is accepted (what is behind it is Redis, not HTTP).
  await waitFor(async () => await new Promise(resolve => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => { s.destroy(); resolve(true) }).on('error', () => resolve(false))
  }), { what: 'latency proxy', timeoutMs: 10_000 })
  return port
}

/** One request after another: each kind's p50 and p99 (ms). */
async function timed (count, send) {
  const times = []
  for (let i = 0; i < count; i++) times.push(await send(i))
  times.sort((a, b) => a - b)
  return { p50: times[Math.floor(times.length / 2)], p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] }
}

/** Stops what a topology started (the helpers take a test's teardown). */
const teardowns = []
const owner = { teardown: fn => { teardowns.push(fn) } }
async function stopTopologies () { for (const fn of teardowns.splice(0).reverse()) await fn() }

/**
 * Logins through a login-api whose Redis is `delayMs` away (each way). `topology`: single,
 * sentinel (a master, one replica, REDIS_WAIT_REPLICAS=1) or cluster (three masters with a
 * replica each, REDIS_WAIT_REPLICAS=1): the servers announce the proxies' ports, so every
 * client connection goes through one. `sql`: users in a private PostgreSQL; `behind`: which
 * server the proxy fronts. `wechatMs`: the simulator's latency; `brokerMs`: a proxy in front of
 * the broker too.
 */
async function measure (delayMs, n, { topology = 'single', sql = false, behind = 'redis', wechatMs = 0, brokerMs = 0 } = {}) {
  const redis = await startRedisServer()
  redisServers.push(redis)
  const pg = sql ? await startPostgresServer() : undefined
  const wx = await sim(wechatMs)
  const b = await broker(wx.url, redis.url)
  const front = async port => await proxy(port, behind === 'redis' ? delayMs : 0)
  let redisUrl
  let env = { PII_ENCRYPTION_KEY: TEST_PII_KEYS }
  if (topology === 'sentinel') {
    const s = await startSentinelTopology(owner, { replicas: 1, front })
    env = { ...env, REDIS_SENTINELS: s.sentinels, REDIS_SENTINEL_MASTER: s.masterName, REDIS_WAIT_REPLICAS: '1' }
  } else if (topology === 'cluster') {
    const c = await startCluster(owner, { front })
    env = { ...env, REDIS_CLUSTER_NODES: c.nodes, REDIS_WAIT_REPLICAS: '1' }
  } else {
    redisUrl = behind === 'redis' ? `redis://127.0.0.1:${await proxy(redis.port, delayMs)}` : redis.url
  }
  if (pg !== undefined) {
    const url = new URL(pg.url)
    if (behind === 'sql') url.port = String(await proxy(pg.port, delayMs))
    env = { ...env, DATABASE_URL: url.toString(), MIGRATE_ON_START: 'true' }
  }
  const brokerUrl = brokerMs === 0 ? b.url : `http://127.0.0.1:${await proxy(Number(new URL(b.url).port), brokerMs)}`
  const api = await loginApi(wx.url, brokerUrl, redisUrl, env)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const login = async body => (await timedPost(agent, api.url, '/api/user/thirdLogin', JSON.stringify(body))).ms
  const mint = async (openid, unionid, phone) => {
    const { code } = await post(`${wx.url}/__sim/login-codes`, { openid, unionid })
    if (!phone) return { code }
    return { code, phoneCode: (await post(`${wx.url}/__sim/phone-codes`, { phoneNumber: '13800138000', openid })).code }
  }
  const tag = `d${delayMs}`
  // Warm-up: the broker's token, JIT, connections (in a Cluster, to every master).
  for (let i = 0; i < 20; i++) await login(await mint(`${tag}-warm-${i}`, null, true))
  // What each kind costs the single Redis (login-api and broker together): INFO stats around it.
  const counted = async (kind, send) => {
    const before = topology === 'single' && !sql ? await redisStats(redis.port) : undefined
    const r = await timed(n, send)
    if (before !== undefined) {
      const after = await redisStats(redis.port)
      const per = f => ((after[f] - before[f]) / n).toFixed(0)
      costs[kind] = `${per('total_commands_processed')} commands, ${per('total_net_input_bytes')} B in, ${per('total_net_output_bytes')} B out`
    }
    return r
  }
  const out = {
    'new user, with phoneCode': await counted('new user, with phoneCode', async i => await login(await mint(`${tag}-new-${i}`, null, true))),
    'new user with unionid, with phoneCode': await counted('new user with unionid, with phoneCode', async i => await login(await mint(`${tag}-union-${i}`, `u-${tag}-${i}`, true))),
    'returning user, with phoneCode': await counted('returning user, with phoneCode', async i => await login(await mint(`${tag}-new-${i}`, null, true))),
    'returning user, no phoneCode': await counted('returning user, no phoneCode', async i => await login(await mint(`${tag}-new-${i}`, null, false)))
  }
  const { token } = await post(`${api.url}/api/user/thirdLogin`, await mint(`${tag}-gw`, null, false))
  out['gateway route GET /api/user/session'] = await timed(n, async () => await new Promise(resolve => {
    const started = process.hrtime.bigint()
    http.get(`${api.url}/api/user/session`, { agent, headers: { authorization: `Bearer ${token}` } }, res => {
      res.resume()
      res.on('end', () => resolve(Number(process.hrtime.bigint() - started) / 1e6))
    })
  }))
  agent.destroy()
  await stopAll()
  await stopTopologies()
  await pg?.stop()
  return out
}

/** Per login kind: Redis commands and bytes (single Redis, no delay). */
const costs = {}

async function redisStats (port) {
  const text = await redisCommand(port, ['INFO', 'stats'])
  return Object.fromEntries(text.split('\r\n').map(l => l.split(':')).filter(f => f.length === 2).map(([k, v]) => [k, Number(v)]))
}

const TARGETS = { 'new user, with phoneCode': 4, 'new user with unionid, with phoneCode': 4, 'returning user, with phoneCode': 3, 'returning user, no phoneCode': 3, 'gateway route GET /api/user/session': 1 }

export async function roundTrips () {
  const n = quick ? 15 : 41
  // 7: the count, per mode, from a 10 ms proxy (a larger delay drowns the noise).
  for (const topology of (process.env.BENCH_TOPOLOGIES ?? 'single,sentinel,cluster').split(',')) {
    const base = await measure(0, n, { topology })
    const slow = await measure(DELAY_MS, n, { topology })
    const title = `7 Redis round trips per login, ${topology}${topology === 'single' ? '' : ' (REDIS_WAIT_REPLICAS=1)'} (proxy ${DELAY_MS} ms each way, p50 of ${n})`
    for (const kind of Object.keys(base)) {
      const trips = (slow[kind].p50 - base[kind].p50) / (2 * DELAY_MS)
      // Each trip through the proxy costs a little CPU besides the delay: half a trip of slack.
      row(title, kind, `${trips.toFixed(1)} (p50 ${base[kind].p50.toFixed(1)} -> ${slow[kind].p50.toFixed(1)} ms)`, `<= ${TARGETS[kind]}`, trips <= TARGETS[kind] + 0.5)
    }
    row(title, 'broker token read, cache hit', '0 (served from the broker\'s memory; no Redis on its path)', '0', true)
  }
  for (const [kind, cost] of Object.entries(costs)) row('7c Redis work per login (single Redis; login-api and broker together)', kind, cost, '')
  if (process.env.BENCH_TOPOLOGIES !== undefined) return
  // 7a: at a realistic distance. WeChat answers in 50 ms; Redis and the broker 0 or 1 ms away.
  const near = await measure(0, n, { wechatMs: 50 })
  const far = await measure(1, n, { wechatMs: 50, brokerMs: 1 })
  const nearTitle = `7a login latency, WeChat 50 ms, Redis and broker 0 / 1 ms away each way (single, p50 / p99 of ${n})`
  for (const kind of Object.keys(near)) {
    row(nearTitle, kind, `0 ms: ${near[kind].p50.toFixed(1)} / ${near[kind].p99.toFixed(1)} ms; 1 ms: ${far[kind].p50.toFixed(1)} / ${far[kind].p99.toFixed(1)} ms (${((far[kind].p50 - near[kind].p50) / 2).toFixed(1)} round trips)`, '')
  }
  // Users in PostgreSQL: what a login waits on from each server.
  const pgBase = await measure(0, n, { sql: true })
  const pgRedis = await measure(DELAY_MS, n, { sql: true, behind: 'redis' })
  const pgSql = await measure(DELAY_MS, n, { sql: true, behind: 'sql' })
  const pgTitle = `7b users in PostgreSQL: round trips per login (proxy ${DELAY_MS} ms each way, p50 of ${n})`
  for (const kind of Object.keys(pgBase)) {
    const redisTrips = (pgRedis[kind].p50 - pgBase[kind].p50) / (2 * DELAY_MS)
    const sqlTrips = (pgSql[kind].p50 - pgBase[kind].p50) / (2 * DELAY_MS)
    row(pgTitle, kind, `Redis ${redisTrips.toFixed(1)}, PostgreSQL ${sqlTrips.toFixed(1)} (p50 ${pgBase[kind].p50.toFixed(1)} ms)`, '')
  }
}
