import { createServer } from 'node:http'
import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { PACED_RATE, broker, cpuMs, details, loginApi, mintLogins, pacedLoad, quick, redisServers, row, sim, stopAll } from '../lib/harness.mjs'

// 8. What tracing costs a login: the same paced load on the same stack with tracing off (no
// OTEL_ variables: nothing of the SDK loaded) and on (every span exported over OTLP/HTTP to a
// sink in this process that answers 200), in one run. CPU per login and added p50, side by side.
export async function tracing () {
  const seconds = quick ? 5 : 20
  const latency = 20
  const upstream = 2 * latency
  let spans = 0
  const sink = createServer((req, res) => {
    let bytes = 0
    req.on('data', c => { bytes += c.length })
    req.on('end', () => { spans += bytes > 0 ? 1 : 0; res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end() })
  })
  await new Promise(resolve => sink.listen(0, '127.0.0.1', resolve))
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}` }
  const measured = {}
  try {
    for (const [mode, env] of [['off', {}], ['on', otel]]) {
      const redis = await startRedisServer()
      redisServers.push(redis)
      const wx = await sim(latency)
      const b = await broker(wx.url, redis.url, env)
      const api = await loginApi(wx.url, b.url, redis.url, env)
      const pool = await mintLogins(wx.url, PACED_RATE * (seconds + 3))
      let next = 0
      const body = () => pool[next++ % pool.length]
      // A short warm-up (JIT, connections), then the measured window.
      await pacedLoad(api.url, '/api/user/thirdLogin', body, PACED_RATE, 2)
      const cpu0 = [b.child.pid, api.child.pid].map(cpuMs)
      const paced = await pacedLoad(api.url, '/api/user/thirdLogin', body, PACED_RATE, seconds)
      const cpu = [b.child.pid, api.child.pid].map((pid, i) => Math.round((cpuMs(pid) - cpu0[i]) / paced.requests * 100) / 100)
      measured[mode] = { cpuPerLoginMs: { 'token-broker': cpu[0], 'login-api': cpu[1] }, addedP50: Math.round((paced.p50 - upstream) * 100) / 100, p99: paced.p99, errors: paced.errors }
      await stopAll()
    }
  } finally {
    await new Promise(resolve => sink.close(resolve))
  }
  details.tracing = { ...measured, exportRequests: spans, rate: PACED_RATE, seconds }
  const { off, on } = measured
  row('8 tracing', 'CPU per login, off / on: broker', `${off.cpuPerLoginMs['token-broker']} / ${on.cpuPerLoginMs['token-broker']} ms`, '')
  row('8 tracing', 'CPU per login, off / on: login-api', `${off.cpuPerLoginMs['login-api']} / ${on.cpuPerLoginMs['login-api']} ms`, '')
  row('8 tracing', `paced at ${PACED_RATE}/s: added p50, off / on`, `${off.addedP50} / ${on.addedP50} ms`, '')
  row('8 tracing', 'errors off / on; OTLP requests received', `${off.errors} / ${on.errors}; ${spans}`, '0 / 0; > 0', off.errors === 0 && on.errors === 0 && spans > 0)
}
