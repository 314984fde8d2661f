// What every bench scenario uses: child processes, Redis servers, load generators, the table.
import { spawn, spawnSync } from 'node:child_process'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
// Not the testing package's index: it loads nock, whose interceptor would sit in this process's
// own HTTP client (a new connection for every request, through an extra layer).
import { freePort, TEST_PII_KEYS } from '../../packages/testing/dist/ports.js'
import { startServiceProcess } from '../../packages/testing/dist/service-process.js'
import { waitFor } from '../../packages/testing/dist/wait.js'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const quick = process.env.BENCH_QUICK === '1' // shorter runs, for trying the bench itself
export const HOT_ROUND_SECONDS = quick ? 2 : 3
export const HOT_ROUNDS = quick ? 3 : 9
// The hot path's server on one CPU, wrk on the other (where taskset and two CPUs are at hand):
// on a 2-CPU VM the scheduler otherwise moves them about, and rounds differ by 2x.
export const PIN = cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
export const SERVER_CPU = String(cpus().length - 1)
export const pin = pid => { if (PIN) spawnSync('taskset', ['-a', '-p', '-c', SERVER_CPU, String(pid)]) }
export const LOGIN_SECONDS = quick ? 10 : 60
export const APPID = 'wxbench00000000001'
export const SECRET = `bench-${randomBytes(8).toString('hex')}`
export const CLIENT_TOKEN = randomBytes(32).toString('base64url')
export const CLIENTS = JSON.stringify([{ name: 'bench', token: CLIENT_TOKEN, apps: ['*'] }])
export const LOG_LEVEL = 'warn'
export const PACED_RATE = Number(process.env.BENCH_PACED_RATE ?? 200)

export const children = new Set()
export const redisServers = []
export const rows = []
export const details = {}

export function row (scenario, metric, measured, target, ok) {
  rows.push({ scenario, metric, measured, target: target ?? '', status: ok === undefined ? '' : ok ? 'met' : 'MISSED' })
}

let servicesCgroup
/** Where the broker and login-api started from now on go (see spawnNode); undefined: nowhere. */
export function placeServicesIn (dir) {
  servicesCgroup = dir
}

export function spawnNode (script, env) {
  // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=prof") go to every process the bench
  // starts, to dig into a finding; BENCH_SERVICE_NODE_ARGS (e.g. "--max-old-space-size=96") to
  // the broker and the login-api only, to try a production flag on them alone.
  // BENCH_SERVICE_ENV (JSON, e.g. '{"MALLOC_ARENA_MAX":"2"}'): environment for those two alone.
  const service = /packages\/(token-broker|login-api)\//.test(script)
  const nodeArgs = [process.env.BENCH_NODE_ARGS ?? '', service ? process.env.BENCH_SERVICE_NODE_ARGS ?? '' : ''].join(' ').split(' ').filter(Boolean)
  const serviceEnv = service ? JSON.parse(process.env.BENCH_SERVICE_ENV ?? '{}') : {}
  const childEnv = { PATH: process.env.PATH, HOST: '127.0.0.1', LOG_LEVEL, ...serviceEnv, ...env }
  // BENCH_SERVICE_CGROUP: a cgroup directory with a `token-broker` and a `login-api` group in it
  // (each with its memory limit set): each service starts inside its own, as in a pod with a
  // memory limit, where Node sizes its heap from the limit rather than the machine's memory.
  const cgroup = service ? servicesCgroup ?? process.env.BENCH_SERVICE_CGROUP : undefined
  const proc = cgroup === undefined
    ? startServiceProcess(`${root}${script}`, { nodeArgs, env: childEnv, stderr: 'inherit' })
    : inCgroup(`${cgroup}/${/token-broker/.test(script) ? 'token-broker' : 'login-api'}`, [...nodeArgs, `${root}${script}`], childEnv)
  children.add(proc)
  proc.exited.then(() => children.delete(proc))
  return proc.child
}

/** Node started inside a cgroup (sh joins it, then execs Node): startServiceProcess's shape. */
export function inCgroup (dir, args, env) {
  const child = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, process.execPath, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise(resolve => child.once('exit', code => resolve(code)))
  return {
    child,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}

export async function ready (url) {
  await waitFor(async () => (await fetch(url)).ok, { timeoutMs: 30_000, what: url })
}

export async function stopAll () {
  await stopProcesses()
  await Promise.all(redisServers.splice(0).map(r => r.stop()))
}

/** Stops the Node processes the bench started, keeping its Redis servers. */
export async function stopProcesses () {
  await Promise.all([...children].map(async c => { await c.stop() }))
}

/** A process's CPU time so far (user + system), in ms. */
export function cpuMs (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
}
export const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100)

export function rssMb (pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return Math.round(kb / 1024 * 10) / 10
}

export async function sim (latencyMs) {
  const port = await freePort()
  const child = spawnNode('packages/wechat-sim/dist/server.js', {
    PORT: String(port), SIM_APPS: JSON.stringify([{ appid: APPID, secret: SECRET }]), SIM_LATENCY_MS: String(latencyMs)
  })
  const url = `http://127.0.0.1:${port}`
  await ready(`${url}/healthz`)
  return { child, url }
}

export async function broker (simUrl, redisUrl, env = {}) {
  const port = await freePort()
  const metricsPort = await freePort()
  const child = spawnNode('packages/token-broker/dist/server.js', {
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    WECHAT_APPID: APPID,
    WECHAT_SECRET: SECRET,
    WECHAT_API_BASE_URL: simUrl,
    WECHAT_API_ALLOW_HTTP: 'true',
    BROKER_CLIENTS: CLIENTS,
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    ...env
  })
  const url = `http://127.0.0.1:${port}`
  // "ready", not "degraded": connected to Redis, or the stampede would not share a store.
  await waitFor(async () => (await (await fetch(`${url}/readyz`)).json()).status === 'ready', { timeoutMs: 30_000, what: 'broker connected' })
  return { child, url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }
}

/** V8 heap figures from a service's own /metrics (prom-client's default metrics), in MB. */
export async function heapMb (metricsUrl) {
  const text = await (await fetch(metricsUrl)).text()
  const read = name => Math.round(Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0) / 2 ** 20 * 10) / 10
  return { heapUsed: read('nodejs_heap_size_used_bytes'), heapTotal: read('nodejs_heap_size_total_bytes'), external: read('nodejs_external_memory_bytes') }
}

export async function post (url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return res.status === 204 ? null : await res.json()
}

export function cannon (opts) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err, result) => err ? reject(err) : resolve(result))
    autocannon.track(instance, { renderProgressBar: false, renderResultsTable: false, renderLatencyTable: false, outputStream: process.stderr })
  })
}

export const summarize = r => ({
  rps: Math.round(r.requests.average),
  p50: r.latency.p50,
  p99: r.latency.p99,
  errors: r.errors + r.timeouts + r.non2xx,
  requests: r.requests.total
})

/** wrk (one thread, 64 connections): Requests/sec and latency percentiles; null where wrk is not installed. */
export function wrk (url, headers, seconds) {
  const r = spawnSync(PIN ? 'taskset' : 'wrk', [...(PIN ? ['-c', '0', 'wrk'] : []), '-t1', '-c64', `-d${seconds}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url], { encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) return null
  const ms = label => {
    const m = new RegExp(`^\\s+${label}\\s+([\\d.]+)(us|ms|s)$`, 'm').exec(r.stdout)
    if (m === null) return 0
    return Math.round(Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 })[m[2]] * 100) / 100
  }
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0) + Number(/Socket errors: connect (\d+)/.exec(r.stdout)?.[1] ?? 0)
  return { rps: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0)), p50: ms('50%'), p99: ms('99%'), errors }
}

/** One POST on a keep-alive agent: its time from send to the last byte, and whether it was a 200. */
export function timedPost (agent, url, path, body, headers = {}) {
  const { hostname, port } = new URL(url)
  return new Promise(resolve => {
    const t0 = performance.now()
    const req = http.request({ agent, hostname, port, method: 'POST', path, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, res => {
      res.resume()
      res.on('end', () => resolve({ ms: performance.now() - t0, ok: res.statusCode === 200 }))
    })
    req.on('error', () => resolve({ ms: performance.now() - t0, ok: false }))
    req.end(body)
  })
}

export function percentiles (times) {
  const xs = [...times].sort((x, y) => x - y)
  const at = q => Math.round(xs[Math.min(xs.length - 1, Math.floor(xs.length * q))] * 100) / 100
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}

/**
 * An open-loop load at a fixed rate: request i is sent at start + i/rate whatever the earlier
 * ones are doing, on up to 100 kept-alive connections. (autocannon's overallRate sends each
 * connection's share in a burst at the top of every second, which measures its own queue.)
 * Late sends (the generator falling behind) are counted, so a lagging generator shows.
 */
export async function pacedLoad (url, path, nextBody, rate, seconds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 100 })
  const n = rate * seconds
  const start = performance.now() + 20
  let late = 0
  const results = await Promise.all(Array.from({ length: n }, (_, i) => new Promise(resolve => {
    const due = start + i * 1000 / rate
    setTimeout(() => {
      if (performance.now() - due > 5) late++
      timedPost(agent, url, path, nextBody()).then(resolve)
    }, Math.max(0, due - performance.now()))
  })))
  agent.destroy()
  const ok = results.filter(r => r.ok)
  return { ...percentiles(ok.map(r => r.ms)), errors: n - ok.length, requests: n, lateSends: late, rate }
}

/** Mints login codes with phone codes for new users: a JSON body per login. */
export async function mintLogins (simUrl, count) {
  const bodies = []
  for (let i = 0; i < count; i += 5000) {
    const { codes } = await post(`${simUrl}/__sim/login-codes`, { count: Math.min(5000, count - i) })
    const phones = await post(`${simUrl}/__sim/phone-codes`, { phoneNumber: '13800138000', openids: codes.map(c => c.openid) })
    codes.forEach((c, j) => bodies.push(JSON.stringify({ code: c.code, phoneCode: phones.codes[j], nickname: 'bench' })))
  }
  return bodies
}

export async function loginApi (simUrl, brokerUrl, redisUrl, env = {}) {
  const port = await freePort()
  const metricsPort = await freePort()
  const child = spawnNode('packages/login-api/dist/server.js', {
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    WECHAT_APPID: APPID,
    WECHAT_API_BASE_URL: simUrl,
    WECHAT_API_ALLOW_HTTP: 'true',
    BROKER_URL: brokerUrl,
    BROKER_TOKEN: CLIENT_TOKEN,
    ...(redisUrl ? { REDIS_URL: redisUrl, PII_ENCRYPTION_KEY: TEST_PII_KEYS } : {}),
    IP_RATE_LIMIT_MAX: '100000000',
    ...env
  })
  const url = `http://127.0.0.1:${port}`
  await ready(`${url}/readyz`)
  return { child, url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }
}

/** `count` POSTs one after another on one kept-alive connection, after a warm-up: their times. */
export async function sequential (url, path, bodies, warmup, headers) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const times = []
  let failed = 0
  for (let i = 0; i < bodies.length; i++) {
    const r = await timedPost(agent, url, path, bodies[i], headers)
    if (i < warmup) continue // JIT, connections, the cached token
    times.push(r.ms)
    if (!r.ok) failed++
  }
  agent.destroy()
  return { ...percentiles(times), failed, count: times.length }
}

/**
 * The hops of a login between framework-less servers (see hop-chain-server.mjs): the login-api
 * calls the broker twice (code2session, the phone number), the broker WeChat. Its entry URL last.
 */
export async function hopChain (delayMs) {
  const chain = []
  for (const role of ['wechat', 'broker', 'login-api']) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const next = role === 'wechat' ? '' : role === 'broker' ? chain[0] : `${chain[1]},${chain[1]}`
    spawnNode('bench/hop-chain-server.mjs', { PORT: String(port), NEXT: next, DELAY_MS: role === 'wechat' ? String(delayMs) : '0' })
    await waitFor(async () => { try { await fetch(url, { method: 'POST', body: '{}' }); return true } catch { return false } }, { what: `chain ${role}` })
    chain.push(url)
  }
  return chain
}
