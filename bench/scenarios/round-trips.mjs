import http from 'node:http'
import net from 'node:net'
import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { startPostgresServer } from '../../packages/testing/dist/sql-servers.js'
import { freePort } from '../../packages/testing/dist/ports.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { broker, loginApi, post, quick, redisServers, row, sim, spawnNode, stopAll, timedPost } from '../lib/harness.mjs'

// 7. Sequential Redis round trips per login, measured black-box: a proxy that delays every
// packet between the login-api and Redis. (p50 with the delay - p50 without) / (2 x delay) is
// the number of round trips a login waits on one after another. Single Redis (REDIS_URL);
// Sentinel and Cluster hand out the servers' own addresses, which a proxy in front does not
// change (their announce settings would have to name the proxies). With users in PostgreSQL
// (DATABASE_URL), the same twice: the proxy in front of Redis, then in front of PostgreSQL.

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

/** One request after another: each kind's p50 (ms). */
async function p50 (count, send) {
  const times = []
  for (let i = 0; i < count; i++) times.push(await send(i))
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

/** `sql`: users in a private PostgreSQL; `behind`: which server the delaying proxy fronts. */
async function measure (delayMs, n, { sql = false, behind = 'redis' } = {}) {
  const redis = await startRedisServer()
  redisServers.push(redis)
  const pg = sql ? await startPostgresServer() : undefined
  const wx = await sim(0)
  const b = await broker(wx.url, redis.url)
  const redisUrl = behind === 'redis' ? `redis://127.0.0.1:${await proxy(redis.port, delayMs)}` : redis.url
  let env = {}
  if (pg !== undefined) {
    const url = new URL(pg.url)
    if (behind === 'sql') url.port = String(await proxy(pg.port, delayMs))
    env = { DATABASE_URL: url.toString(), MIGRATE_ON_START: 'true' }
  }
  const api = await loginApi(wx.url, b.url, redisUrl, env)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const login = async body => (await timedPost(agent, api.url, '/api/user/thirdLogin', JSON.stringify(body))).ms
  const mint = async (openid, unionid, phone) => {
    const { code } = await post(`${wx.url}/__sim/login-codes`, { openid, unionid })
    if (!phone) return { code }
    return { code, phoneCode: (await post(`${wx.url}/__sim/phone-codes`, { phoneNumber: '13800138000', openid })).code }
  }
  const tag = `d${delayMs}`
  // Warm-up: the broker's token, JIT, connections.
  for (let i = 0; i < 20; i++) await login(await mint(`${tag}-warm-${i}`, null, true))
  const out = {
    'new user, with phoneCode': await p50(n, async i => await login(await mint(`${tag}-new-${i}`, null, true))),
    'new user with unionid, with phoneCode': await p50(n, async i => await login(await mint(`${tag}-union-${i}`, `u-${tag}-${i}`, true))),
    'returning user, with phoneCode': await p50(n, async i => await login(await mint(`${tag}-new-${i}`, null, true))),
    'returning user, no phoneCode': await p50(n, async i => await login(await mint(`${tag}-new-${i}`, null, false)))
  }
  const { token } = await post(`${api.url}/api/user/thirdLogin`, await mint(`${tag}-gw`, null, false))
  out['gateway route GET /api/user/session'] = await p50(n, async () => await new Promise(resolve => {
    const started = process.hrtime.bigint()
    http.get(`${api.url}/api/user/session`, { agent, headers: { authorization: `Bearer ${token}` } }, res => {
      res.resume()
      res.on('end', () => resolve(Number(process.hrtime.bigint() - started) / 1e6))
    })
  }))
  agent.destroy()
  await stopAll()
  await pg?.stop()
  return out
}

export async function roundTrips () {
  const n = quick ? 15 : 41
  const base = await measure(0, n)
  const slow = await measure(DELAY_MS, n)
  const title = `7 Redis round trips per login (proxy ${DELAY_MS} ms each way, single Redis, p50 of ${n})`
  for (const kind of Object.keys(base)) {
    const trips = (slow[kind] - base[kind]) / (2 * DELAY_MS)
    row(title, kind, `${trips.toFixed(1)} (p50 ${base[kind].toFixed(1)} -> ${slow[kind].toFixed(1)} ms)`, '')
  }
  row(title, 'broker token read, cache hit', '0 (served from the broker\'s memory; no Redis on its path)', '')
  // Users in PostgreSQL: what a login waits on from each server, and its p50 beside Redis's.
  const pgBase = await measure(0, n, { sql: true })
  const pgRedis = await measure(DELAY_MS, n, { sql: true, behind: 'redis' })
  const pgSql = await measure(DELAY_MS, n, { sql: true, behind: 'sql' })
  const pgTitle = `7b users in PostgreSQL: round trips per login (proxy ${DELAY_MS} ms each way, p50 of ${n})`
  for (const kind of Object.keys(pgBase)) {
    const redisTrips = (pgRedis[kind] - pgBase[kind]) / (2 * DELAY_MS)
    const sqlTrips = (pgSql[kind] - pgBase[kind]) / (2 * DELAY_MS)
    row(pgTitle, kind, `Redis ${redisTrips.toFixed(1)}, PostgreSQL ${sqlTrips.toFixed(1)} (p50 ${pgBase[kind].toFixed(1)} ms; users in Redis ${base[kind].toFixed(1)} ms)`, '')
  }
}
