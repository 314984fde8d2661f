// The soak's processes: Redis Sentinel (a master, two replicas, three sentinels), the WeChat
// simulator, two token-brokers and two login-apis, each a real process that a fault can SIGKILL,
// SIGSTOP and start again. Memory is sampled from each service's /metrics.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
// Not the testing package's index: it loads nock.
import { freePort, TEST_PII_KEYS } from '../../packages/testing/dist/ports.js'
import { redisCommand, startSentinelTopology } from '../../packages/testing/dist/redis-topologies.js'
import { startServiceProcess } from '../../packages/testing/dist/service-process.js'
import { waitFor } from '../../packages/testing/dist/wait.js'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const APPS = ['wxsoak000000000001', 'wxsoak000000000002']
const SECRET = `soak-${randomBytes(8).toString('hex')}`
export const LOGIN_TOKEN = randomBytes(32).toString('base64url')
export const SDK_TOKEN = randomBytes(32).toString('base64url')
/** What WeChat takes to answer outside a latency spike (ms). */
export const WECHAT_LATENCY_MS = 20

/** Lines that mean a process failed in a way no fault excuses. */
const FATAL = /unhandledRejection|uncaughtException|closing after an uncaught error|"level":60/

export class Stack {
  constructor () {
    this.cleanups = []
    this.services = []
    /** Each unexpected line: { service, line }. */
    this.fatal = []
    /** { at, service, generation, rss, heap } every few seconds. */
    this.memory = []
    this.redis = null
  }

  teardown (fn) { this.cleanups.push(fn) }

  async start ({ ownSentinels, ownMaster } = {}) {
    let redisEnv
    this.prefixes = { broker: {}, login: {} }
    if (ownSentinels !== undefined) {
      redisEnv = { REDIS_SENTINELS: ownSentinels, REDIS_SENTINEL_MASTER: ownMaster ?? 'mymaster' }
      if (process.env.SOAK_REDIS_USERNAME !== undefined) redisEnv.REDIS_USERNAME = process.env.SOAK_REDIS_USERNAME
      if (process.env.SOAK_REDIS_PASSWORD !== undefined) redisEnv.REDIS_PASSWORD = process.env.SOAK_REDIS_PASSWORD
      // Never the services' own keys on someone's Redis.
      this.prefixes = { broker: { REDIS_KEY_PREFIX: 'soak:wxbroker:' }, login: { REDIS_KEY_PREFIX: 'soak:wxlogin:' } }
    } else {
      const topo = await startSentinelTopology(this, { replicas: 2 })
      this.redis = { topo, dir: mkdtempSync(join(tmpdir(), 'soak-redis-')), processes: new Map(topo.servers.map(s => [s.port, s.child])) }
      this.teardown(() => rmSync(this.redis.dir, { recursive: true, force: true }))
      redisEnv = { REDIS_SENTINELS: topo.sentinels, REDIS_SENTINEL_MASTER: topo.masterName }
    }
    const sim = await this.service('wechat-sim', 'packages/wechat-sim/dist/server.js', {
      SIM_APPS: JSON.stringify(APPS.map(appid => ({ appid, secret: SECRET }))),
      SIM_LATENCY_MS: String(WECHAT_LATENCY_MS)
    })
    this.sim = sim.url
    const common = { ...redisEnv, WECHAT_API_BASE_URL: sim.url, WECHAT_API_ALLOW_HTTP: 'true' }
    const clients = [{ name: 'login-api', token: LOGIN_TOKEN, apps: APPS }, { name: 'sdk', token: SDK_TOKEN, apps: APPS }]
    this.brokers = []
    for (const name of ['broker-a', 'broker-b']) {
      this.brokers.push(await this.service(name, 'packages/token-broker/dist/server.js', {
        ...common,
        ...this.prefixes.broker,
        WECHAT_APPS: JSON.stringify(APPS.map(appid => ({ appid, secret: SECRET }))),
        BROKER_CLIENTS: JSON.stringify(clients)
      }))
    }
    this.logins = []
    for (const [i, name] of ['login-a', 'login-b'].entries()) {
      this.logins.push(await this.service(name, 'packages/login-api/dist/server.js', {
        ...common,
        ...this.prefixes.login,
        LOGIN_APPS: JSON.stringify(APPS),
        BROKER_URL: this.brokers[i].url,
        BROKER_TOKEN: LOGIN_TOKEN,
        PII_ENCRYPTION_KEY: TEST_PII_KEYS,
        // One load generator on one address, and users that log in many times.
        IP_RATE_LIMIT_MAX: '100000000',
        SESSIONS_PER_USER_MAX: '10000'
      }))
    }
    for (const s of [...this.brokers, ...this.logins]) await this.ready(s)
    this.sampler = setInterval(() => { this.sample().catch(() => {}) }, 5000)
    // WeChat's token calls as they happen, to tell which fault caused each.
    this.tokenCalls = []
    let last = 0
    this.callSampler = setInterval(() => {
      this.simCalls().then(c => {
        const n = c.stable_token + c.token
        if (n !== last) this.tokenCalls.push({ at: Date.now(), from: last, to: n })
        last = n
      }, () => {})
    }, 500)
    this.teardown(() => { clearInterval(this.sampler); clearInterval(this.callSampler) })
  }

  async ready (s, timeoutMs = 30_000) {
    await waitFor(async () => (await fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.status === 200, { timeoutMs, intervalMs: 100, what: `${s.name} ready` })
  }

  /** A service from its built output on ports of its own, kept across restarts. */
  async service (name, script, env) {
    const port = await freePort()
    const metricsPort = await freePort()
    const s = { name, url: `http://127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, generation: 0, proc: null, exits: [] }
    const fullEnv = { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(metricsPort), LOG_LEVEL: 'warn', ...env }
    s.launch = async () => {
      s.generation++
      s.startedAt = Date.now()
      s.proc = startServiceProcess(`${root}${script}`, { env: fullEnv, onLine: line => { if (FATAL.test(line)) this.fatal.push({ service: name, line: line.slice(0, 300) }) } })
      await waitFor(async () => (await fetch(`${s.url}/healthz`).catch(() => null))?.status === 200, { timeoutMs: 30_000, intervalMs: 50, what: `${name} up` })
    }
    s.kill = async (signal = 'SIGKILL') => {
      const proc = s.proc
      proc.child.kill(signal)
      await proc.exited
    }
    await s.launch()
    this.services.push(s)
    this.teardown(async () => { if (s.proc.child.exitCode === null && s.proc.child.signalCode === null) await s.proc.stop('SIGKILL') })
    return s
  }

  async sample () {
    const at = Date.now()
    await Promise.all(this.services.map(async s => {
      const text = await (await fetch(s.metricsUrl, { signal: AbortSignal.timeout(2000) })).text()
      const value = name => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN)
      this.memory.push({ at, service: s.name, generation: s.generation, startedAt: s.startedAt, rss: value('process_resident_memory_bytes'), heap: value('nodejs_heap_size_used_bytes') })
    }).map(p => p.catch(() => {})))
  }

  /** The master's port as the sentinels name it now. */
  async masterPort () { return await this.redis.topo.masterPort() }

  /** SIGKILL the current master; a sentinel promotes a replica. */
  async killMaster () {
    const port = await this.masterPort()
    const child = this.redis.processes.get(port)
    child.kill('SIGKILL')
    await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve))
    return port
  }

  /** A server on a killed master's port again: the sentinels make it a replica of the new master. */
  async restartRedis (port) {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { cwd: this.redis.dir, stdio: 'ignore' })
    this.redis.processes.set(port, child)
    this.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
    await waitFor(async () => (await redisCommand(port, ['PING']).catch(() => '')).startsWith('+PONG'), { timeoutMs: 10_000, what: `redis on ${port} again` })
  }

  async signalMaster (signal) {
    const port = await this.masterPort()
    this.redis.processes.get(port).kill(signal)
    return port
  }

  async signalRedis (port, signal) { this.redis.processes.get(port)?.kill(signal) }

  async simPost (path, body, method = 'POST') {
    const res = await fetch(`${this.sim}/__sim${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return await res.json().catch(() => null)
  }

  async simCalls () { return await (await fetch(`${this.sim}/__sim/calls`)).json() }

  /** SIGTERM to every service: each must exit 0. The exit codes, by service. */
  async stopServices () {
    const codes = {}
    for (const s of [...this.logins, ...this.brokers, this.services[0]]) {
      if (s.proc.child.exitCode !== null || s.proc.child.signalCode !== null) { codes[s.name] = 'not running'; continue }
      s.proc.child.kill('SIGTERM')
      codes[s.name] = await Promise.race([s.proc.exited, new Promise(resolve => setTimeout(() => resolve('no exit in 40 s'), 40_000))])
    }
    return codes
  }

  async close () {
    for (const fn of this.cleanups.reverse()) await Promise.resolve(fn()).catch(() => {})
  }
}
