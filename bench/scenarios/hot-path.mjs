import { spawnSync } from 'node:child_process'
import { freePort } from '../../packages/testing/dist/ports.js'
import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { APPID, CLIENTS, CLIENT_TOKEN, HOT_ROUNDS, HOT_ROUND_SECONDS, PIN, SERVER_CPU, broker, cannon, details, pin, redisServers, row, sim, spawnNode, stopAll, summarize, wrk } from '../lib/harness.mjs'

// 1. Broker hot path against a bare route doing the same bearer check, at the default log level
// and at warn, with wrk; and wrk's own headroom against a framework-less server.
export async function hotPath () {
  const redis = await startRedisServer()
  const path = `/v1/apps/${APPID}/access-token`
  const headers = { authorization: `Bearer ${CLIENT_TOKEN}` }
  const hasWrk = spawnSync('wrk', ['--version']).error === undefined
  const load = async (url, seconds) => hasWrk ? wrk(`${url}${path}`, headers, seconds) : summarize(await cannon({ url: `${url}${path}`, headers, connections: 64, duration: seconds }))
  const generator = hasWrk ? `wrk -t1 -c64${PIN ? `, wrk on CPU 0 and the server on CPU ${SERVER_CPU}` : ''}` : 'autocannon -c64 (wrk not installed: the ratio may measure autocannon)'
  details.hotPath = { generator, pinned: PIN }
  for (const level of ['info', 'warn']) {
    redisServers.push(redis)
    await redis.start()
    const wx = await sim(0)
    const b = await broker(wx.url, redis.url, { LOG_LEVEL: level })
    pin(b.child.pid)
    const token = await waitFor(async () => {
      const body = await (await fetch(`${b.url}${path}`, { headers })).json()
      return typeof body.access_token === 'string' ? body : null
    }, { what: 'a first token' })
    const basePort = await freePort()
    pin(spawnNode('bench/baseline-server.mjs', { PORT: String(basePort), BROKER_CLIENTS: CLIENTS, TOKEN_LENGTH: String(token.access_token.length), LOG_LEVEL: level }).pid)
    const baseUrl = `http://127.0.0.1:${basePort}`
    await waitFor(async () => (await fetch(`${baseUrl}${path}`, { headers })).ok, { what: 'baseline' })
    await load(b.url, 2) // warm-up: JIT, connection pools
    await load(baseUrl, 2)
    // Alternating pairs of rounds: drift on a shared machine hits both sides of a pair alike, so
    // the ratio is each pair's, and the figure their median.
    const rounds = { ours: [], bare: [], ratios: [] }
    for (let i = 0; i < HOT_ROUNDS; i++) {
      const first = i % 2 === 0 ? 'ours' : 'bare' // neither side always runs second
      for (const side of first === 'ours' ? ['ours', 'bare'] : ['bare', 'ours']) rounds[side].push(await load(side === 'ours' ? b.url : baseUrl, HOT_ROUND_SECONDS))
      rounds.ratios.push(rounds.ours[i].rps / rounds.bare[i].rps)
    }
    const median = xs => [...xs].sort((x, y) => x.rps - y.rps)[Math.floor(xs.length / 2)]
    const ours = median(rounds.ours)
    const bare = median(rounds.bare)
    const ratio = Math.round([...rounds.ratios].sort((x, y) => x - y)[Math.floor(HOT_ROUNDS / 2)] * 100) / 100
    const spread = `${Math.round(Math.min(...rounds.ratios) * 100) / 100}-${Math.round(Math.max(...rounds.ratios) * 100) / 100}`
    const target = level === 'info' ? 0.9 : 0.95
    details.hotPath[level] = { broker: ours, baseline: bare, rounds, secondsPerRound: HOT_ROUND_SECONDS }
    row('1 broker hot path', `LOG_LEVEL=${level}: broker / bare route, ${generator}, median of ${HOT_ROUNDS} paired rounds (range)`, `${ratio} (${spread}); medians ${ours.rps} / ${bare.rps} req/s`, `>= ${target}`, ratio >= target)
    row('1 broker hot path', `LOG_LEVEL=${level}: p50 / p99 latency, broker`, `${ours.p50} / ${ours.p99} ms`, `bare: ${bare.p50} / ${bare.p99} ms`)
    row('1 broker hot path', `LOG_LEVEL=${level}: errors`, String(ours.errors + bare.errors), '0', ours.errors + bare.errors === 0)
    if (level === 'info') {
      const rawPort = await freePort()
      pin(spawnNode('bench/raw-http-server.mjs', { PORT: String(rawPort), TOKEN_LENGTH: String(token.access_token.length) }).pid)
      await waitFor(async () => (await fetch(`http://127.0.0.1:${rawPort}${path}`)).ok, { what: 'raw server' })
      await load(`http://127.0.0.1:${rawPort}`, 2)
      const raw = median(await Promise.resolve().then(async () => { const xs = []; for (let i = 0; i < 3; i++) xs.push(await load(`http://127.0.0.1:${rawPort}`, HOT_ROUND_SECONDS)); return xs }))
      details.hotPath.rawHttp = raw
      row('1 broker hot path', 'load generator headroom: node:http / bare route', `${Math.round(raw.rps / bare.rps * 100) / 100} (${raw.rps} / ${bare.rps} req/s)`, '> 1.2: wrk out-runs the ceiling', raw.rps / bare.rps > 1.2)
    }
    await stopAll()
  }
}
