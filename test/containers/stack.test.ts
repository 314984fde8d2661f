// The compose stack in a real container engine (run by test/containers/run.sh, `pnpm
// test:containers`): the project's Dockerfile and docker-compose.yml as they are, plus the
// simulator override. Every check goes through the published ports, as a user's would.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { waitFor } from '@wxlogin/testing'
import { root } from '../helpers.js'

const project = process.env.COMPOSE_PROJECT_NAME ?? 'wxlogin-ct'
const LOGIN = 'http://127.0.0.1:3000'
const SIM = 'http://127.0.0.1:3999'
const PROM = 'http://127.0.0.1:9090'
/** Every service but Grafana, whose image neither reachable registry has. */
const SERVICES = ['redis-1', 'redis-2', 'redis-3', 'postgres', 'wechat-sim', 'token-broker', 'login-api', 'prometheus']
const OURS = ['wechat-sim', 'token-broker', 'login-api']

function sh (cmd: string, args: string[], timeoutMs = 600_000): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.status)}: ${(r.stderr ?? '').slice(-2000)}`)
  return r.stdout
}
const compose = (...args: string[]): string => sh('docker-compose', ['-f', 'docker-compose.yml', '-f', 'docker-compose.sim.yml', ...args])
const sentinelCompose = (...args: string[]): string => sh('docker-compose', ['-f', 'docker-compose.yml', '-f', 'docker-compose.sim.yml', '-f', 'docker-compose.sentinel.yml', ...args])
const podman = (...args: string[]): string => sh('podman', args)
const containers = (service: string): string[] =>
  podman('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`).split('\n').filter(Boolean)

async function json (url: string, init: RequestInit = {}): Promise<{ status: number, body: any }> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...init.headers }, signal: AbortSignal.timeout(10_000) })
  return { status: res.status, body: res.status === 204 ? null : await res.json() }
}

/** The demo flow: the simulator plays the phone, everything else goes through the login-api's port. */
async function loginWithPhone (openid: string): Promise<{ status: number, body: any }> {
  const { body: { code } } = await json(`${SIM}/__sim/login-codes`, { method: 'POST', body: JSON.stringify({ openid }) })
  const { body: { code: phoneCode } } = await json(`${SIM}/__sim/phone-codes`, { method: 'POST', body: JSON.stringify({ openid, phoneNumber: '13800138000' }) })
  return await json(`${LOGIN}/api/user/thirdLogin`, { method: 'POST', body: JSON.stringify({ code, phoneCode, nickname: 'Container' }) })
}

const healthy = (count: number) => (): boolean => {
  const rows = podman('ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}} {{.Status}}').trim().split('\n')
  return rows.length >= count && rows.every(r => r.includes('(healthy)'))
}
const allHealthy = healthy(SERVICES.length + 1)

t.test('the compose stack in containers', async t => {
  const buildStarted = Date.now()
  compose('build')
  t.comment(`images built in ${Math.round((Date.now() - buildStarted) / 1000)} s`)
  for (const service of OURS) {
    const size = podman('image', 'inspect', `wx-phone-login/${service}:latest`, '--format', '{{.Size}}').trim()
    t.comment(`image wx-phone-login/${service}: ${(Number(size) / 1e6).toFixed(0)} MB`)
  }

  const upStarted = Date.now()
  compose('up', '-d', ...SERVICES)
  await waitFor(allHealthy, { timeoutMs: 180_000, intervalMs: 500, what: 'every health check to pass' })
  t.comment(`stack healthy ${((Date.now() - upStarted) / 1000).toFixed(1)} s after docker-compose up`)
  t.equal(containers('token-broker').length, 2, 'two token-broker replicas')

  t.test('containers run as non-root on read-only root filesystems', async t => {
    for (const service of OURS) {
      for (const id of containers(service)) {
        t.equal(podman('exec', id, 'id', '-u').trim(), '1000', `${service} runs as node (uid 1000)`)
        t.equal(podman('inspect', id, '--format', '{{.HostConfig.ReadonlyRootfs}}').trim(), 'true', `${service} has a read-only root filesystem`)
        const write = spawnSync('podman', ['exec', id, 'sh', '-c', 'echo x > /app/probe'], { encoding: 'utf8' })
        t.not(write.status, 0, `${service} cannot write to its image`)
      }
    }
  })

  let session = ''
  t.test('a user logs in with a phone number through the published login-api port', async t => {
    const res = await loginWithPhone('container-user')
    t.equal(res.status, 200, `thirdLogin answered ${res.status} ${res.status === 200 ? '' : JSON.stringify(res.body)}`)
    t.match(res.body, { is_new_user: true, user: { openid: 'container-user', phone: { purePhoneNumber: '13800138000' } }, phone_error: null })
    session = res.body.token
  })

  t.test('the user is a row in the postgres service (schema applied at start), its phone sealed', async t => {
    const [pg] = containers('postgres')
    const sql = "select i.appid, u.phone_masked, left(u.phone_sealed, 5) from wxlogin_users u join wxlogin_identities i using (user_id) where i.openid = 'container-user'"
    t.equal(podman('exec', pg as string, 'psql', '-U', 'wxlogin', '-d', 'wxlogin', '-tAc', sql).trim(), 'wxdev0000000000001|138****8000|pii1:')
  })

  t.test('Prometheus (deploy/prometheus/prometheus.yml as it is) has every target up and answers the dashboard\'s queries', async t => {
    const targets = await waitFor(async () => {
      const { body } = await json(`${PROM}/api/v1/targets`)
      const active = body.data.activeTargets as Array<{ labels: { job: string }, health: string }>
      return active.length === 3 && active.every(a => a.health === 'up') ? active : null
    }, { timeoutMs: 120_000, intervalMs: 1000, what: 'three targets up (two brokers, one login-api)' })
    t.same(targets.map(a => a.labels.job).sort(), ['login-api', 'token-broker', 'token-broker'])
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/dashboards/wx-phone-login.json'), 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
    let answered = 0
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        // Grafana's variables, as Grafana would fill them for "all apps" over a 5-minute range.
        const expr = target.expr.replace(/\$__rate_interval|\$__range|\$__interval/g, '5m').replace(/=~"\$\w+"/g, '=~".*"').replace(/="\$\w+"/g, '=~".*"')
        const { status, body } = await json(`${PROM}/api/v1/query?query=${encodeURIComponent(expr)}`)
        t.equal(status, 200, `${panel.title}: ${expr}`)
        t.equal(body.status, 'success')
        answered++
      }
    }
    t.ok(answered >= 10, `${answered} dashboard queries answered`)
    const { body: rules } = await json(`${PROM}/api/v1/rules`)
    t.ok(rules.data.groups[0].rules.length >= 8, 'the alert rules are loaded')
  })

  t.test('one token-broker container killed: logins keep working', async t => {
    const [victim] = containers('token-broker')
    podman('kill', '--signal', 'KILL', victim as string)
    for (let i = 0; i < 5; i++) {
      const res = await loginWithPhone(`after-kill-${i}`)
      t.equal(res.status, 200, `login ${i} answered ${res.status} ${res.status === 200 ? '' : JSON.stringify(res.body)}`)
    }
    compose('up', '-d', 'token-broker')
    await waitFor(allHealthy, { timeoutMs: 120_000, intervalMs: 500, what: 'the broker replica back' })
  })

  t.test('redis-2 stopped and started: token refreshes keep working', async t => {
    compose('stop', 'redis-2')
    const before = (await json(`${SIM}/__sim/calls`)).body.stable_token
    // WeChat rejects the next access_token once (40001): the login-api invalidates it at the
    // broker, which force-refreshes under the Redlock quorum (2 of 3 servers up).
    await json(`${SIM}/__sim/faults`, { method: 'POST', body: JSON.stringify({ api: 'getuserphonenumber', kind: 'errcode', errcode: 40001, count: 1 }) })
    const res = await loginWithPhone('redis-2-down')
    t.equal(res.status, 200)
    t.equal(res.body.phone_error, null, 'the phone arrived with the refreshed token')
    t.equal((await json(`${SIM}/__sim/calls`)).body.stable_token - before, 1, 'one refresh, cluster-wide')
    compose('start', 'redis-2')
    await waitFor(allHealthy, { timeoutMs: 120_000, intervalMs: 500, what: 'redis-2 healthy again' })
    t.equal((await loginWithPhone('redis-2-back')).status, 200)
  })

  t.test('the whole stack restarted: users and sessions survive (AOF and PostgreSQL volumes)', async t => {
    compose('down')
    compose('up', '-d', ...SERVICES)
    await waitFor(allHealthy, { timeoutMs: 180_000, intervalMs: 500, what: 'the stack healthy again' })
    const me = await json(`${LOGIN}/api/user/me`, { headers: { authorization: `Bearer ${session}` } })
    t.equal(me.status, 200, 'the session written before the restart still works')
    if (me.status !== 200) {
      // What Redis loaded at its start, and what the login-api said: the cause, kept in the log.
      for (const service of ['redis-1', 'login-api']) {
        for (const id of containers(service)) t.comment(`${service} log:\n${podman('logs', '--tail', '60', id)}`)
      }
    }
    t.match(me.body, { openid: 'container-user', phone: { purePhoneNumber: '13800138000' } })
    const again = await loginWithPhone('container-user')
    t.match(again.body, { is_new_user: false, user: { user_id: me.body.user_id } }, 'the same user from PostgreSQL')
  })

  t.test('docker-compose down leaves nothing running', async t => {
    compose('down', '-v')
    t.equal(podman('ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`).trim(), '', 'no container left')
  })
})

/** The sentinels' port inside the compose network (docker-compose.sentinel.yml), asked through `podman exec`. */
const SENTINEL_PORT = /'port (\d+)'/.exec(readFileSync(join(root, 'docker-compose.sentinel.yml'), 'utf8'))?.[1] ?? ''
const MASTER_ADDR = ['redis-cli', '-p', SENTINEL_PORT, 'sentinel', 'get-master-addr-by-name', 'mymaster']

/** What the sentinels think and what each service logged last, for a failover that never completed. */
function sentinelDiagnosis (): string {
  const lines: string[] = []
  const run = (label: string, args: string[]): void => {
    const r = spawnSync('podman', args, { encoding: 'utf8', timeout: 20_000 })
    lines.push(`--- ${label}`, `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n'))
  }
  const [sentinel] = containers('sentinel-1')
  if (sentinel !== undefined) {
    run('sentinel-1: the master', ['exec', sentinel, ...MASTER_ADDR])
  }
  for (const service of ['sentinel-1', 'redis-1', 'redis-2', 'redis-3', 'token-broker', 'login-api']) {
    for (const id of containers(service)) run(`${service} ${id}: logs`, ['logs', '--tail', '40', id])
  }
  return lines.join('\n')
}

t.test('the Sentinel override: redis-1 SIGKILLed, a replica promoted, logins resume on the same containers', async t => {
  const services = [...SERVICES.filter(s => s !== 'prometheus'), 'sentinel-1', 'sentinel-2', 'sentinel-3']
  sentinelCompose('up', '-d', ...services)
  t.teardown(() => { sentinelCompose('down', '-v') })
  await waitFor(healthy(services.length + 1), { timeoutMs: 180_000, intervalMs: 500, what: 'the Sentinel stack healthy' })
  t.equal((await loginWithPhone('sentinel-before')).status, 200)
  const [master] = containers('redis-1')
  const ipOf = '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
  const masterIp = podman('inspect', master as string, '--format', ipOf).trim()
  podman('kill', '--signal', 'KILL', master as string)
  const killed = Date.now()
  // Podman before 4.7 may apply the restart policy after `podman kill` (containers/podman#19889;
  // Debian's is 4.3): redis-1 would come back, racing the sentinels, maybe at another address.
  // Kept down, so what is tested is the promotion of a replica; `stop` marks it stopped by user.
  let restarts = 0
  const watch = { on: true }
  const keptDown = (async () => {
    while (watch.on) {
      for (const id of containers('redis-1')) {
        restarts++
        spawnSync('podman', ['stop', '--time', '0', id], { encoding: 'utf8', timeout: 20_000 })
      }
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  })()
  t.teardown(async () => { watch.on = false; await keptDown })
  // The sentinels need down-after-milliseconds (5 s) and an election (a split vote is tried again
  // 2 x failover-timeout = 20 s later); the services then reconnect.
  // A refused login throws, so a timeout names the last answer; the containers' logs follow it.
  const res = await waitFor(async () => {
    const r = await loginWithPhone(`sentinel-after-${Date.now()}`)
    if (r.status !== 200) throw new Error(`the last login answered ${r.status} ${JSON.stringify(r.body)}`)
    return r
  }, { timeoutMs: 60_000, intervalMs: 500, what: 'a login after the failover' }).catch((err: unknown) => {
    t.comment(sentinelDiagnosis())
    throw err
  })
  t.equal(res.status, 200, `logins resumed ${((Date.now() - killed) / 1000).toFixed(1)} s after the master was killed`)
  watch.on = false
  await keptDown
  const [sentinel] = containers('sentinel-1')
  const [ip, port] = podman('exec', sentinel as string, ...MASTER_ADDR).trim().split('\n')
  t.not(ip?.trim(), masterIp, `a replica was promoted (the master is now ${ip ?? ''}:${port ?? ''})`)
  if (restarts > 0) t.comment(`podman restarted the killed redis-1 ${restarts} time(s); stopped again each time`)
  t.comment(`sentinel failover in containers: logins resumed ${((Date.now() - killed) / 1000).toFixed(1)} s after SIGKILL`)
})
