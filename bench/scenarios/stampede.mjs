import http from 'node:http'
import { freePort } from '../../packages/testing/dist/ports.js'
import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { APPID, CLIENT_TOKEN, SECRET, broker, details, post, redisServers, row, sim, spawnNode, stopAll } from '../lib/harness.mjs'

// 2. A cold token wanted by 1,000 callers at once over 3 replicas, ours and the naive way.
export async function stampede () {
  const redis = await startRedisServer()
  redisServers.push(redis)
  const wx = await sim(50)
  // node:http with an unlimited agent: every caller has its own connection, all at once.
  const fire = async (urls, path, headers) => {
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
    const get = url => new Promise(resolve => {
      http.get(url, { agent, headers }, res => {
        let body = ''
        res.on('data', d => { body += d })
        res.on('end', () => {
          try { resolve(res.statusCode === 200 ? JSON.parse(body).access_token : null) } catch { resolve(null) }
        })
      }).on('error', () => resolve(null))
    })
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: 1000 }, async (_, i) => await get(`${urls[i % urls.length]}${path}`)))
    const ms = Math.round(performance.now() - started)
    agent.destroy()
    return { ms, failed: results.filter(x => x === null).length, distinct: new Set(results.filter(Boolean)).size }
  }

  const brokers = []
  for (let i = 0; i < 3; i++) brokers.push(await broker(wx.url, redis.url))
  await post(`${wx.url}/__sim/reset`, {})
  const ours = await fire(brokers.map(b => b.url), `/v1/apps/${APPID}/access-token`, { authorization: `Bearer ${CLIENT_TOKEN}` })
  ours.upstream = (await (await fetch(`${wx.url}/__sim/calls`)).json()).stable_token
  for (const b of brokers) b.child.kill('SIGTERM')

  const naive = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    spawnNode('bench/naive-broker.mjs', { PORT: String(port), REDIS_URL: redis.url, WECHAT_API_BASE_URL: wx.url, WECHAT_APPID: APPID, WECHAT_SECRET: SECRET })
    naive.push(`http://127.0.0.1:${port}`)
  }
  for (const u of naive) await waitFor(async () => { try { await fetch(`${u}/nope`); return true } catch { return false } }, { what: 'naive broker' })
  await post(`${wx.url}/__sim/reset`, {})
  const theirs = await fire(naive, '/token', {})
  theirs.upstream = (await (await fetch(`${wx.url}/__sim/calls`)).json()).token

  details.stampede = { callers: 1000, replicas: 3, simulatedLatencyMs: 50, ours, naive: theirs }
  row('2 stampede (1,000 callers, 3 replicas)', 'upstream token calls, broker', String(ours.upstream), 'exactly 1', ours.upstream === 1)
  row('2 stampede (1,000 callers, 3 replicas)', 'upstream token calls, naive (copied snippet)', String(theirs.upstream), '(comparison)')
  row('2 stampede (1,000 callers, 3 replicas)', 'time until the last caller is served', `${ours.ms} ms (naive: ${theirs.ms} ms)`, '')
  row('2 stampede (1,000 callers, 3 replicas)', 'distinct tokens handed out / failures', `${ours.distinct} / ${ours.failed} (naive: ${theirs.distinct} / ${theirs.failed})`, '1 / 0', ours.distinct === 1 && ours.failed === 0)
  await stopAll()
}
