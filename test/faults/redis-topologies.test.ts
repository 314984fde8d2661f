// Redis Sentinel and Redis Cluster, proven by failover: real redis-server topologies, two
// token-brokers and two login-apis as processes, logins driven continuously while the master
// that holds them is SIGKILLed.
import t, { type Test } from 'tap'
import { freePort, startCluster, startSentinelTopology, TEST_PII_KEYS, waitFor } from '@wxlogin/testing'
import { run } from '../helpers.js'

const APPID = 'wxtopology00000001'
const SECRET = 'topology-test-secret'
const BROKER_TOKEN = 'topology-broker-client-token-0123456789'
const PROBE = 'probe-openid'

interface Stack { sim: string, logins: string[], brokers: Array<{ url: string }> }

/** The simulator, two brokers and two login-apis against one Redis topology (`redisEnv`). */
async function services (t: Test, redisEnv: Record<string, string>): Promise<Stack> {
  const simPort = String(await freePort())
  run(t, 'packages/wechat-sim/dist/server.js', { PORT: simPort, WECHAT_APPID: APPID, WECHAT_SECRET: SECRET, LOG_LEVEL: 'warn' })
  const sim = `http://127.0.0.1:${simPort}`
  await waitFor(async () => (await fetch(`${sim}/healthz`)).ok, { what: 'the simulator' })
  /** A service from its built output on a free port, sharing the topology and the simulator. */
  const service = async (script: string, env: Record<string, string>): Promise<string> => {
    const port = String(await freePort())
    run(t, script, {
      ...redisEnv,
      ...env,
      PORT: port,
      METRICS_PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      WECHAT_APPID: APPID,
      WECHAT_API_BASE_URL: sim,
      WECHAT_API_ALLOW_HTTP: 'true'
    })
    return `http://127.0.0.1:${port}`
  }
  const brokers = []
  for (let i = 0; i < 2; i++) {
    brokers.push({ url: await service('packages/token-broker/dist/server.js', { WECHAT_SECRET: SECRET, BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token: BROKER_TOKEN, apps: [APPID] }]) }) })
  }
  // Not ready yet throws with the broker's reason, so a timeout says what it was waiting on.
  const brokerReady = (url: string) => async (): Promise<boolean> => {
    const body = await fetch(`${url}/readyz`).then(async r => await r.json(), (err: Error) => ({ error: err.message }))
    if (body.status !== 'ready') throw new Error(`/readyz answered ${JSON.stringify(body)}`)
    return true
  }
  for (const b of brokers) await waitFor(brokerReady(b.url), { timeoutMs: 40_000, intervalMs: 200, what: 'a broker ready' })
  const logins = []
  for (let i = 0; i < 2; i++) {
    logins.push(await service('packages/login-api/dist/server.js', { BROKER_URL: (brokers[i] as { url: string }).url, BROKER_TOKEN, IP_RATE_LIMIT_MAX: '100000', PII_ENCRYPTION_KEY: TEST_PII_KEYS }))
  }
  for (const l of logins) await waitFor(async () => (await fetch(`${l}/readyz`).catch(() => null))?.status === 200, { timeoutMs: 20_000, what: 'a login-api ready' })
  return { sim, logins, brokers }
}

async function post (url: string, body: object, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
    return { status: res.status, body: res.status === 204 ? null : await res.json() }
  } catch {
    return { status: 0, body: null }
  }
}

async function mint (sim: string, openid: string): Promise<{ code: string, phoneCode: string }> {
  const code = (await post(`${sim}/__sim/login-codes`, { openid })).body.code as string
  const phoneCode = (await post(`${sim}/__sim/phone-codes`, { openid, phoneNumber: '13800138000' })).body.code as string
  return { code, phoneCode }
}

interface Attempt { at: number, status: number, openid: string, token?: string, via: string }

/**
 * Logins, alternating instances, until `stop` says so. Every openid is new; each attempt is
 * recorded with its time and answer.
 */
async function drive (stack: Stack, attempts: Attempt[], stop: () => boolean): Promise<void> {
  for (let i = 0; !stop(); i++) {
    const openid = `user-${attempts.length}`
    const via = stack.logins[i % 2] as string
    const { code, phoneCode } = await mint(stack.sim, openid)
    const res = await post(`${via}/api/user/thirdLogin`, { code, phoneCode })
    attempts.push({ at: Date.now(), status: res.status, openid, via, ...(res.status === 200 ? { token: res.body.token as string } : {}) })
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** The failover, end to end, for one topology; `kill` SIGKILLs the master that matters. */
async function failover (t: Test, mode: string, redisEnv: Record<string, string>, kill: () => Promise<void>, ready: RegExp): Promise<void> {
  const stack = await services(t, redisEnv)
  const attempts: Attempt[] = []
  let killedAt = 0
  // Logins after the kill that succeeded in a row, up to the last attempt. In a Cluster a login
  // whose keys live on the other masters succeeds while the killed one's slots still fail over,
  // so a few successes do not mean recovered: 20 in a row, with no failure since, do.
  const streak = (): number => {
    let n = 0
    for (let i = attempts.length - 1; i >= 0; i--) {
      const a = attempts[i] as Attempt
      if (a.at <= killedAt || a.status !== 200) break
      n++
    }
    return n
  }
  const done = drive(stack, attempts, () => killedAt > 0 && streak() >= 20)
  await waitFor(() => attempts.filter(a => a.status === 200).length >= 20, { timeoutMs: 30_000, what: 'logins before the kill' })
  killedAt = Date.now()
  await kill()
  // Readiness names the mode and the part while the master is gone (if the gap is long enough to see).
  const seen = await waitFor(async () => {
    const r = await fetch(`${stack.logins[0] as string}/readyz`).then(async res => ({ status: res.status, body: await res.json() }), () => null)
    if (r?.status === 503) return r.body.message as string
    return attempts.some(a => a.at > killedAt && a.status === 200) ? 'recovered first' : null
  }, { timeoutMs: 30_000, intervalMs: 50, what: 'readiness during the failover' })
  if (seen !== 'recovered first') t.match(seen, ready, `/readyz while the master is gone: ${seen}`)
  await waitFor(() => streak() >= 20, { timeoutMs: 60_000, intervalMs: 50, what: 'logins to succeed again after the kill' })
  await done

  const after = attempts.filter(a => a.at > killedAt)
  const failures = after.filter(a => a.status !== 200)
  const windowMs = failures.length === 0 ? 0 : (failures.at(-1) as Attempt).at - killedAt
  t.comment(`${mode}: ${attempts.length} logins; ${failures.length} failed after the kill, the last ${windowMs} ms after it (${[...new Set(failures.map(f => f.status))].join(', ') || 'none'})`)
  t.ok(windowMs < 15_000, `${mode}: logins failed for ${windowMs} ms, no longer than the failover`)
  t.ok(streak() >= 20, 'then logins succeed again, on the same processes: the last 20 in a row')
  t.ok(failures.every(f => f.status === 503 || f.status === 0), 'failures are 503s, never a wrong answer')

  // Everything answered 200 before the kill survived it: user and session (WAIT for a replica).
  const before = attempts.filter(a => a.at <= killedAt && a.status === 200)
  let lost = 0
  for (const a of before) {
    const me = await fetch(`${stack.logins[1] as string}/api/user/me`, { headers: { authorization: `Bearer ${a.token as string}` } })
    const body = me.status === 200 ? await me.json() as { openid: string, phone: { purePhoneNumber: string } | null } : null
    if (body?.openid !== a.openid || body.phone?.purePhoneNumber !== '13800138000') lost++
  }
  t.equal(lost, 0, `all ${before.length} users and sessions answered 200 before the kill are still there`)

  // The per-user phone limit holds across both login-apis after the failover.
  const { code } = await mint(stack.sim, PROBE)
  const session = (await post(`${stack.logins[0] as string}/api/user/thirdLogin`, { code })).body.token as string
  const statuses = []
  for (let i = 0; i < 6; i++) {
    const { phoneCode } = await mint(stack.sim, PROBE)
    statuses.push((await post(`${stack.logins[i % 2] as string}/api/user/phone`, { phoneCode }, { authorization: `Bearer ${session}` })).status)
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429], 'the 6th phone exchange of one user is refused, whichever instance serves it')

  // A token refresh after the failover: one upstream call for both brokers.
  const calls = async (): Promise<number> => (await (await fetch(`${stack.sim}/__sim/calls`)).json() as { stable_token: number }).stable_token
  const beforeCalls = await calls()
  await post(`${stack.sim}/__sim/faults`, { api: 'getuserphonenumber', kind: 'errcode', errcode: 40001, count: 1 })
  const refreshed = await mint(stack.sim, 'after-refresh')
  const res = await post(`${stack.logins[1] as string}/api/user/thirdLogin`, refreshed)
  t.equal(res.status, 200)
  t.equal(res.body.phone_error, null, 'the phone came with the refreshed token')
  t.equal(await calls() - beforeCalls, 1, 'exactly one upstream token call')
}

t.test('Redis Sentinel: the master SIGKILLed under load', async t => {
  const topo = await startSentinelTopology(t)
  const env = { REDIS_SENTINELS: topo.sentinels, REDIS_SENTINEL_MASTER: topo.masterName }
  await failover(t, 'sentinel', env, async () => {
    const port = await topo.masterPort()
    await (topo.servers.find(s => s.port === port) as { kill: () => Promise<void> }).kill()
  }, /redis sentinel master mymaster/)
  t.not(await topo.masterPort(), topo.servers[0]?.port, 'a replica was promoted')
})

t.test('Redis Cluster (3 masters, 3 replicas): the master of the busiest slot SIGKILLed under load', async t => {
  const topo = await startCluster(t)
  await failover(t, 'cluster', { REDIS_CLUSTER_NODES: topo.nodes }, async () => {
    // The app's slot: its token, lock and update channel live there.
    await (await topo.masterOf(`{${APPID}}`)).kill()
  }, /redis cluster/)
})
