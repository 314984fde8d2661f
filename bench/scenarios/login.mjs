import { startRedisServer } from '../../packages/testing/dist/redis-server.js'
import { LOGIN_SECONDS, PACED_RATE, broker, cannon, cpuMs, details, heapMb, loginApi, mintLogins, pacedLoad, post, quick, redisServers, row, rssMb, placeServicesIn, sim, stopAll, stopProcesses, summarize, wrk } from '../lib/harness.mjs'
import { floorChain, monitorRedis } from '../lib/floor.mjs'
import { makePodCgroups, manifestLimitMib, rssSplitMb } from '../lib/pod-cgroup.mjs'

const ratio = (ours, floor) => Math.round(ours / floor * 100) / 100
const round = ms => Math.round(ms * 100) / 100

// 3 and 4. thirdLogin with code and phoneCode under load, then memory after 30 s and 60 s;
// paced, against the floor of the same hops and Redis commands (bench/floor-service-server.mjs).
export async function login () {
  const latency = 20
  // A Redis each, so each service's commands per login can be counted (MONITOR).
  const brokerRedis = await startRedisServer()
  const apiRedis = await startRedisServer()
  redisServers.push(brokerRedis, apiRedis)
  const wx = await sim(latency)
  const b = await broker(wx.url, brokerRedis.url)
  const api = await loginApi(wx.url, b.url, apiRedis.url)
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
  const cpuPerLogin = [b.child.pid, api.child.pid].map((pid, i) => round((cpuMs(pid) - cpuAtStart[i]) / result.requests.total))
  // A rate this machine serves without queueing, sent open-loop: what remains above the
  // simulated upstream time is the services' own latency; and the CPU it took.
  const cpuBeforePaced = [b.child.pid, api.child.pid].map(cpuMs)
  const paced = await pacedLoad(url, '/api/user/thirdLogin', () => {
    if (next >= pool.length) exhausted = true
    return pool[next++ % pool.length]
  }, PACED_RATE, quick ? 5 : 15)
  const pacedCpu = [b.child.pid, api.child.pid].map((pid, i) => round((cpuMs(pid) - cpuBeforePaced[i]) / paced.requests))
  // What each service sends Redis per login, for the floor to send as much: 20 logins, one at a time.
  const monitors = [await monitorRedis(brokerRedis.port), await monitorRedis(apiRedis.port)]
  for (let i = 0; i < 20; i++) await post(`${url}/api/user/thirdLogin`, JSON.parse(pool[next++ % pool.length]))
  const [brokerWork, apiWork] = monitors.map(m => m.perLogin(20))
  const s = summarize(result)
  const upstream = 2 * latency // code2session and getuserphonenumber; the token is cached
  const added = s.p50 - upstream
  details.login = { ...s, cpuPerLoginMs: { 'token-broker': cpuPerLogin[0], 'login-api': cpuPerLogin[1] }, connections: 100, seconds: LOGIN_SECONDS, simulatedLatencyMsPerCall: latency, poolExhausted: exhausted, rssMb: rss, heapMb: heap }
  row('3 thirdLogin (code + phoneCode)', 'throughput', `${s.rps} req/s`, '')
  row('3 thirdLogin (code + phoneCode)', 'CPU time per login (user + system), 100 connections: broker / login-api', `${cpuPerLogin[0]} / ${cpuPerLogin[1]} ms`, '')
  row('3 thirdLogin (code + phoneCode)', 'p50 / p99 latency', `${s.p50} / ${s.p99} ms`, `upstream ${upstream} ms`)
  row('3 thirdLogin (code + phoneCode)', 'added p50 (p50 - simulated upstream), 100 connections', `${added} ms`, '(CPU-bound: queueing)')
  row('3 thirdLogin (code + phoneCode)', 'errors', `${s.errors} of ${s.requests}${exhausted ? ' (code pool ran out)' : ''}`, '0', s.errors === 0)
  await gatewayCheck(url, wx.url)
  await stopProcesses()

  // The floor: the same hops and as many Redis commands per login, framework-less; warmed first.
  const floor = await floorChain({
    delayMs: latency,
    brokerRedisUrl: brokerRedis.url,
    apiRedisUrl: apiRedis.url,
    brokerWork,
    apiWork
  })
  const floorBody = () => pool[0]
  await pacedLoad(floor.url, '/', floorBody, PACED_RATE, 3)
  const cpuBeforeFloor = [floor.brokerPid, floor.apiPid].map(cpuMs)
  const pacedFloor = await pacedLoad(floor.url, '/', floorBody, PACED_RATE, quick ? 5 : 15)
  const floorCpu = [floor.brokerPid, floor.apiPid].map((pid, i) => round((cpuMs(pid) - cpuBeforeFloor[i]) / pacedFloor.requests))
  const addedPaced = round(paced.p50 - upstream)
  const addedFloor = round(pacedFloor.p50 - upstream)
  const title = `3 thirdLogin paced at ${PACED_RATE} req/s, open loop`
  row(title, 'p50 / p99', `${paced.p50} / ${paced.p99} ms (late sends ${paced.lateSends} of ${paced.requests})`, `upstream ${upstream} ms`)
  row(title, 'added p50 (p50 - upstream): ours / floor', `${addedPaced} / ${addedFloor} ms (x${ratio(addedPaced, addedFloor)}, errors ${paced.errors})`, '<= 2x floor', addedPaced <= 2 * addedFloor && paced.errors === 0)
  const work = w => `${w.commands} (${w.scripts} scripts making ${w.innerCalls} calls)`
  row(title, 'Redis commands per login: broker / login-api', `${work(brokerWork)} / ${work(apiWork)}`, '(the floor sends as many)')
  for (const [i, svc] of ['token-broker', 'login-api'].entries()) {
    row(title, `CPU per login ${svc}: ours / floor`, `${pacedCpu[i]} / ${floorCpu[i]} ms (x${ratio(pacedCpu[i], floorCpu[i])})`, '<= 2x floor', pacedCpu[i] <= 2 * floorCpu[i])
  }
  details.loginPaced = { ...paced, rate: PACED_RATE, cpuPerLoginMs: pacedCpu, redisPerLogin: { 'token-broker': brokerWork, 'login-api': apiWork }, floor: { ...pacedFloor, cpuPerLoginMs: floorCpu } }
  for (const svc of ['token-broker', 'login-api']) {
    const at30 = rss['30s']?.[svc]
    const at60 = rss['60s']?.[svc]
    row('4 memory', `RSS ${svc} at rest / at 30 s / ${LOGIN_SECONDS} s of load (heap sized from the machine)`, `${rss.rest?.[svc]} / ${at30} / ${at60} MB`, '')
    const growth = Math.round((at60 - at30) * 10) / 10
    row('4 memory', `RSS growth ${svc}, 30 s -> end`, `${growth} MB`, '< 10 MB (noise)', growth < 10)
  }
  await stopProcesses()
  await inPod(latency, brokerRedis.url, apiRedis.url)
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

// 4b. The two services as the Kubernetes manifests run them: each in a memory cgroup at its
// limit, where Node sizes its heap from the limit. At rest (started, 200 logins, 2 s idle), then
// after 15 s of logins at the paced rate.
async function inPod (latency, brokerRedisUrl, apiRedisUrl) {
  const pod = makePodCgroups()
  if (pod.reason !== undefined) {
    row('4 memory', 'in a pod-sized memory cgroup', pod.reason, '<= 100 MB at rest', false)
    return
  }
  try {
    const wx = await sim(latency)
    const simUrl = wx.url
    const pacedSeconds = quick ? 5 : 15
    const pool = await mintLogins(simUrl, 200 + PACED_RATE * pacedSeconds + 100)
    const nextBody = () => pool.pop()
    placeServicesIn(pod.dir)
    const b = await broker(simUrl, brokerRedisUrl)
    const api = await loginApi(simUrl, b.url, apiRedisUrl)
    placeServicesIn(undefined)
    for (let i = 0; i < 200; i++) await post(`${api.url}/api/user/thirdLogin`, JSON.parse(nextBody()))
    await new Promise(resolve => setTimeout(resolve, 2000))
    const rest = [b, api].map(s => rssSplitMb(s.child.pid))
    await pacedLoad(api.url, '/api/user/thirdLogin', nextBody, PACED_RATE, pacedSeconds)
    const loaded = [b, api].map(s => rssSplitMb(s.child.pid))
    details.podMemory = { limitMib: manifestLimitMib('login-api'), rest, loaded }
    for (const [i, svc] of ['token-broker', 'login-api'].entries()) {
      const limit = `${manifestLimitMib(svc)} MiB`
      const split = m => `${m.rss} MB (own ${m.private}, shared ${m.shared})`
      row('4 memory', `RSS ${svc} in a ${limit} cgroup (its manifest's limit): at rest`, split(rest[i]), '<= 100 MB', rest[i].rss <= 100)
      row('4 memory', `RSS ${svc} in a ${limit} cgroup: after ${pacedSeconds} s at ${PACED_RATE} logins/s`, split(loaded[i]), '')
    }
  } finally {
    placeServicesIn(undefined)
    await stopProcesses()
    pod.remove()
  }
}
