import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { LOGIN_SECONDS, PACED_RATE, broker, cannon, cpuMs, details, heapMb, hopChain, loginApi, mintLogins, pacedLoad, post, quick, redisServers, row, rssMb, sim, stopAll, summarize, wrk } from '../lib/harness.mjs'

// 3 and 4. thirdLogin with code and phoneCode under load, then memory after 30 s and 60 s.
export async function login () {
  const latency = 20
  // The floor of the paced row: the same hops, framework-less, the leaf waiting 20 ms a call.
  const chain = await hopChain(latency)
  const chainBody = JSON.stringify({ code: 'x'.repeat(32), phoneCode: 'y'.repeat(32) })
  const pacedFloor = await pacedLoad(chain[2], '/', () => chainBody, PACED_RATE, quick ? 5 : 15)
  await stopAll()
  const redis = await startRedisServer()
  redisServers.push(redis)
  const wx = await sim(latency)
  const b = await broker(wx.url, redis.url)
  const api = await loginApi(wx.url, b.url, redis.url)
  const url = api.url

  // Codes are single use: mint more than the run can spend, each login for its own user.
  const pool = await mintLogins(wx.url, quick ? 20_000 : 120_000)
  let next = 0
  let exhausted = false
  const loginRequests = [{
    method: 'POST',
    path: '/api/user/thirdLogin',
    headers: { 'content-type': 'application/json' },
    setupRequest: req => {
      if (next >= pool.length) exhausted = true
      return { ...req, body: pool[next++ % pool.length] }
    }
  }]
  const rss = {}
  const heap = {}
  const sample = at => {
    rss[at] = { 'token-broker': rssMb(b.child.pid), 'login-api': rssMb(api.child.pid) }
    Promise.all([heapMb(b.metricsUrl), heapMb(api.metricsUrl)])
      .then(([bh, ah]) => { heap[at] = { 'token-broker': bh, 'login-api': ah } }, () => {})
  }
  // At rest: started, warm (the code pool minted), not yet loaded.
  sample('rest')
  const cpuAtStart = [b.child.pid, api.child.pid].map(cpuMs)
  const timers = [setTimeout(() => sample('30s'), LOGIN_SECONDS * 500), setTimeout(() => sample('60s'), LOGIN_SECONDS * 1000 - 200)]
  const result = await cannon({
    url,
    connections: 100,
    duration: LOGIN_SECONDS,
    requests: loginRequests
  })
  timers.forEach(clearTimeout)
  // CPU time per login is steadier than throughput on a shared VM: what a flag or change costs.
  const cpuPerLogin = [b.child.pid, api.child.pid].map((pid, i) => Math.round((cpuMs(pid) - cpuAtStart[i]) / result.requests.total * 100) / 100)
  // A rate this machine serves without queueing, sent open-loop: what remains above the
  // simulated upstream time is the services' own latency.
  const paced = await pacedLoad(url, '/api/user/thirdLogin', () => {
    if (next >= pool.length) exhausted = true
    return pool[next++ % pool.length]
  }, PACED_RATE, quick ? 5 : 15)
  const s = summarize(result)
  const upstream = 2 * latency // code2session and getuserphonenumber; the token is cached
  const added = s.p50 - upstream
  details.login = { ...s, cpuPerLoginMs: { 'token-broker': cpuPerLogin[0], 'login-api': cpuPerLogin[1] }, connections: 100, seconds: LOGIN_SECONDS, simulatedLatencyMsPerCall: latency, poolExhausted: exhausted, rssMb: rss, heapMb: heap }
  row('3 thirdLogin (code + phoneCode)', 'throughput', `${s.rps} req/s`, '')
  row('3 thirdLogin (code + phoneCode)', 'CPU time per login (user + system): broker / login-api', `${cpuPerLogin[0]} / ${cpuPerLogin[1]} ms`, '')
  row('3 thirdLogin (code + phoneCode)', 'p50 / p99 latency', `${s.p50} / ${s.p99} ms`, `upstream ${upstream} ms`)
  row('3 thirdLogin (code + phoneCode)', 'added p50 (p50 - simulated upstream), 100 connections', `${added} ms`, '(CPU-bound: queueing)')
  row('3 thirdLogin (code + phoneCode)', 'errors', `${s.errors} of ${s.requests}${exhausted ? ' (code pool ran out)' : ''}`, '0', s.errors === 0)
  row('3 thirdLogin (code + phoneCode)', `paced at ${PACED_RATE} req/s, open loop: p50 / p99`, `${paced.p50} / ${paced.p99} ms (late sends ${paced.lateSends} of ${paced.requests})`, `upstream ${upstream} ms`)
  row('3 thirdLogin (code + phoneCode)', `paced at ${PACED_RATE} req/s: added p50`, `${Math.round((paced.p50 - upstream) * 100) / 100} ms (errors ${paced.errors})`, '<= 2 ms', paced.p50 - upstream <= 2 && paced.errors === 0)
  row('3 thirdLogin (code + phoneCode)', `paced floor: the same hops between node:http servers, leaf waiting ${latency} ms: added p50`, `${Math.round((pacedFloor.p50 - upstream) * 100) / 100} ms`, '(this machine)')
  details.loginPaced = { ...paced, rate: PACED_RATE, floor: pacedFloor }
  for (const svc of ['token-broker', 'login-api']) {
    const at30 = rss['30s']?.[svc]
    const at60 = rss['60s']?.[svc]
    row('4 memory', `RSS ${svc} at rest / at 30 s / ${LOGIN_SECONDS} s of load`, `${rss.rest?.[svc]} / ${at30} / ${at60} MB`, '<= 120 MB', at60 <= 120)
    const growth = Math.round((at60 - at30) * 10) / 10
    row('4 memory', `RSS growth ${svc}, 30 s -> end`, `${growth} MB`, '< 10 MB (noise)', growth < 10)
  }
  await gatewayCheck(url, wx.url)
  await stopAll()
}

// 5. The gateway route (nginx auth_request / Envoy ext_authz) on the same login-api and Redis:
// one session read per request.
async function gatewayCheck (url, simUrl) {
  const { code } = await post(`${simUrl}/__sim/login-codes`, {})
  const { token } = await post(`${url}/api/user/thirdLogin`, { code })
  const checks = wrk(`${url}/api/user/session`, { authorization: `Bearer ${token}` }, quick ? 5 : 10) ??
    summarize(await cannon({ url: `${url}/api/user/session`, connections: 64, duration: quick ? 5 : 10, headers: { authorization: `Bearer ${token}` } }))
  details.gateway = checks
  row('5 gateway session check', 'GET /api/user/session (one Redis read), 64 connections', `${checks.rps} req/s, p50 ${checks.p50} ms, p99 ${checks.p99} ms`, '')
  row('5 gateway session check', 'errors', String(checks.errors), '0', checks.errors === 0)
}
