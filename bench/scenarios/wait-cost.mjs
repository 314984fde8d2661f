import { startSentinelTopology } from '../../packages/testing/dist/redis-topologies.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { RedisHandle } from '../../packages/service-kit/dist/index.js'
import { details, quick, row } from '../lib/harness.mjs'

/**
 * What REDIS_WAIT_REPLICAS=1 costs: a login's two durable writes (the user upsert script and the
 * session SET, each followed by WAIT) against a Sentinel master with two replicas on this
 * machine and 20 at a time, with WAIT and without.
 */
export async function waitCost () {
  const teardowns = []
  const topo = await startSentinelTopology({ teardown: fn => teardowns.push(fn) })
  const silent = { warn () {}, info () {}, error () {}, debug () {}, trace () {}, fatal () {}, child () { return this } }
  const sentinels = topo.sentinels.split(',').map(s => ({ host: s.split(':')[0], port: Number(s.split(':')[1]) }))
  const results = {}
  try {
    for (const waitReplicas of [0, 1]) {
      const redis = new RedisHandle({ sentinels, sentinelMaster: topo.masterName, tls: false, commandTimeoutMs: 1000, waitReplicas }, silent, 'bench').start()
      await waitFor(() => redis.ok(), { what: 'sentinel connection' })
      const write = async i => {
        const user = `bench:user:${i}`
        await redis.cmd.eval("redis.call('SET', KEYS[1], ARGV[1]) return 1", { keys: [user], arguments: ['{"openid":"x"}'] })
        await redis.replicated(user)
        await redis.cmd.set(`bench:session:${i}`, '{"openid":"x"}', { EX: 60 })
        await redis.replicated(`bench:session:${i}`)
      }
      const n = quick ? 500 : 2000
      const times = []
      for (let i = 0; i < n; i++) { const t0 = performance.now(); await write(i); times.push(performance.now() - t0) }
      times.sort((a, b) => a - b)
      const started = performance.now()
      await Promise.all(Array.from({ length: 20 }, async (_, w) => { for (let i = 0; i < n / 20; i++) await write(n + w * n + i) }))
      const perSecond = Math.round(n / ((performance.now() - started) / 1000))
      results[waitReplicas] = { p50: times[Math.floor(n / 2)], p99: times[Math.floor(n * 0.99)], perSecond }
      await redis.close()
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn()
  }
  const f = ms => `${ms.toFixed(2)} ms`
  row('durable login writes (Sentinel, 2 replicas)', 'p50 without / with WAIT', `${f(results[0].p50)} / ${f(results[1].p50)}`)
  row('durable login writes (Sentinel, 2 replicas)', 'p99 without / with WAIT', `${f(results[0].p99)} / ${f(results[1].p99)}`)
  row('durable login writes (Sentinel, 2 replicas)', 'logins/s, 20 at a time, without / with WAIT', `${results[0].perSecond} / ${results[1].perSecond}`)
  details.waitCost = results
}
