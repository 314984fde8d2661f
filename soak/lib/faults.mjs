// The fault schedule: every fault at least once, each overlapping another, in a cycle that repeats
// for longer runs. Each fault has a window (from its start to the end of its recovery); a 503 is
// expected only inside a window.
import { APPS, WECHAT_LATENCY_MS } from './stack.mjs'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A cycle's length, and when the first starts (s). */
export const CYCLE_SECONDS = 150
const FIRST_CYCLE_AT = 15
/** How long a Redis failover may take to reach the services: sentinels' 1 s down-after, the election, a client's 5 s rediscovery. */
export const FAILOVER_BOUND_SECONDS = 20
/** Revocations per app in a run: well inside the broker's daily budget of 10 (see schedule()). */
const REVOCATIONS_PER_APP = 4
/** How long after a service restarts or a WeChat fault ends its effects may still show. */
const SETTLE_SECONDS = 10

/**
 * One cycle, offsets in seconds. `hold`: how long the fault lasts; `settle`: recovery after it.
 * `redis`: needs the soak's own Redis processes.
 */
function cycle (stack) {
  const login = i => stack.logins[i]
  const broker = i => stack.brokers[i]
  const restartAfter = (s, ms) => async () => { await s.kill(); await sleep(ms); await s.launch() }
  const restart = (f) => ({ ...f, restarts: true })
  return [
    { at: 0, name: 'WeChat latency spike (2 s)', hold: 8, run: async () => { await stack.simPost('/latency', { latency_ms: 2000 }, 'PUT'); await sleep(8000); await stack.simPost('/latency', { latency_ms: WECHAT_LATENCY_MS }, 'PUT') } },
    restart({ at: 3, name: 'login-api SIGKILL + restart', hold: 5, run: restartAfter(login(0), 5000) }),
    { at: 25, name: 'Redis master SIGKILL (failover)', hold: 20, settle: FAILOVER_BOUND_SECONDS, redis: true, run: async () => { const port = await stack.killMaster(); await sleep(20_000); await stack.restartRedis(port) } },
    restart({ at: 28, name: 'token-broker SIGKILL + restart', hold: 5, run: restartAfter(broker(1), 5000) }),
    { at: 60, name: 'Redis master SIGSTOP (5 s)', hold: 5, settle: FAILOVER_BOUND_SECONDS, redis: true, run: async () => { const port = await stack.signalMaster('SIGSTOP'); await sleep(5000); await stack.signalRedis(port, 'SIGCONT') } },
    { at: 62, name: 'WeChat -1 burst', hold: 5, run: async () => { await stack.simPost('/faults', { api: 'jscode2session', kind: 'errcode', errcode: -1, count: 10 }); await stack.simPost('/faults', { api: 'getuserphonenumber', kind: 'errcode', errcode: -1, count: 5 }) } },
    { at: 63, name: 'access_token revoked (40001)', hold: 5, revokes: 1, run: async () => { await stack.simPost('/revoke', { appid: APPS[0] }) } },
    { at: 90, name: 'WeChat connection resets', hold: 5, run: async () => { await stack.simPost('/faults', { api: 'jscode2session', kind: 'drop', count: 5 }); await stack.simPost('/faults', { api: 'getuserphonenumber', kind: 'drop', count: 5 }) } },
    restart({ at: 92, name: 'login-api SIGKILL + restart', hold: 5, run: restartAfter(login(1), 5000) }),
    restart({ at: 110, name: 'token-broker SIGKILL + restart', hold: 5, run: restartAfter(broker(0), 5000) }),
    { at: 112, name: 'access_token revoked (40001)', hold: 5, revokes: 1, run: async () => { await stack.simPost('/revoke', { appid: APPS[1] }) } }
  ]
}

/**
 * The faults of a run of `seconds`, with absolute offsets; Redis faults only on the soak's own
 * Redis. The first cycle has every fault; later ones kill services only in the first half, so the
 * second half shows each service's memory over one undisturbed life, under WeChat and Redis faults.
 */
export function schedule (stack, seconds, { ownRedis }) {
  const all = []
  for (let start = FIRST_CYCLE_AT; start + CYCLE_SECONDS - 30 <= seconds || start === FIRST_CYCLE_AT; start += CYCLE_SECONDS) {
    for (const f of cycle(stack)) {
      if (f.redis === true && ownRedis) continue
      if (start + f.at >= seconds - 20) continue
      if (f.restarts === true && start > FIRST_CYCLE_AT && start + f.at > seconds / 2) continue
      // WeChat forces at most 20 stable refreshes a day per app and the broker keeps 10 of them for
      // invalidations (TOKEN_INVALIDATION_DAILY_BUDGET): past that a revoked token stays revoked
      // by design. A run revokes each app at most REVOCATIONS_PER_APP times.
      if (f.revokes !== undefined && start >= FIRST_CYCLE_AT + REVOCATIONS_PER_APP * CYCLE_SECONDS) continue
      all.push({ ...f, at: start + f.at })
    }
  }
  return all.sort((a, b) => a.at - b.at)
}

/** Runs the schedule from `t0`; each fault's window is recorded as it happens (ms since epoch). */
export function runSchedule (faults, t0, log) {
  const windows = []
  const done = faults.map(async f => {
    await sleep(Math.max(0, t0 + f.at * 1000 - Date.now()))
    const start = Date.now()
    log(`${((start - t0) / 1000).toFixed(0).padStart(5)} s  ${f.name}`)
    try {
      await f.run()
    } catch (err) {
      windows.push({ name: f.name, start, end: Date.now(), failed: String(err) })
      return
    }
    const end = Math.max(Date.now(), start + f.hold * 1000)
    windows.push({ name: f.name, start, end: end + (f.settle ?? SETTLE_SECONDS) * 1000 })
  })
  return { windows, done: Promise.all(done) }
}

/** True when `at` (ms) is inside any fault's window. */
export const inWindow = (windows, at) => windows.some(w => at >= w.start && at <= w.end)
