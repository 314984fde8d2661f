import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { createConnection } from 'node:net'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import { redisCommand, startRedisServer, waitFor } from '@wxlogin/testing'
import { root, run, stackPorts, tool } from './helpers.js'

const read = (p: string): string => readFileSync(join(root, p), 'utf8')

t.test('promtool accepts the Prometheus config and the alert rules', async t => {
  if (!tool(t, 'promtool')) return
  const config = spawnSync('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml'], { cwd: root, encoding: 'utf8' })
  t.equal(config.status, 0, config.stdout + config.stderr)
  const rules = spawnSync('promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml'], { cwd: root, encoding: 'utf8' })
  t.equal(rules.status, 0, rules.stdout + rules.stderr)
})

interface Compose { services: Record<string, Record<string, unknown>>, secrets: Record<string, { file: string }> }

/** The merged configuration docker-compose itself computes (variables, overrides, defaults). */
function composeConfig (t: Test, files: string[]): Compose | undefined {
  if (!tool(t, 'docker-compose')) return undefined
  const r = spawnSync('docker-compose', [...files.flatMap(f => ['-f', f]), 'config'], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
  t.equal(r.status, 0, r.stderr)
  return parse(r.stdout) as Compose
}

t.test('the compose file parses and has what an operator needs', async t => {
  if (tool(t, 'docker-compose')) {
    const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
  }
  const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose
  const s = compose.services
  t.same(Object.keys(s).sort(), ['grafana', 'login-api', 'postgres', 'prometheus', 'redis-1', 'redis-2', 'redis-3', 'token-broker'])
  for (const [name, svc] of Object.entries(s)) {
    t.ok(svc.healthcheck, `${name} has a health check`)
    t.ok(svc.restart, `${name} has a restart policy`)
  }
  t.match(s['redis-1']?.command, ['redis-server', '--appendonly', 'yes'], 'redis-1 persists with AOF')
  t.same((s['token-broker']?.deploy as { replicas: number }).replicas, 2, 'two broker replicas')
  const brokerEnv = s['token-broker']?.environment as Record<string, string>
  t.equal(brokerEnv.REDLOCK_URLS?.split(',').length, 3, 'a quorum of 3 lock servers')
  t.equal(brokerEnv.WECHAT_SECRET_FILE, '/run/secrets/wechat_secret', 'secrets through *_FILE')
  t.equal(brokerEnv.BROKER_CLIENTS_FILE, '/run/secrets/broker_clients')
  t.equal((s['login-api']?.environment as Record<string, string>).BROKER_TOKEN_FILE, '/run/secrets/broker_token')
  t.notOk(existsSync(join(root, '.env')), 'no .env switches the simulator on behind the operator\'s back')
  for (const secret of Object.values(compose.secrets)) t.match(secret.file, /^\.\/deploy\/secrets\//)
  t.match(read('.gitignore'), /^deploy\/secrets\/\*$/m, 'secret files are never committed')
})

t.test('without the simulator override, the broker talks to WeChat over HTTPS; plain http only with it; the login-api never', async t => {
  const prod = composeConfig(t, ['docker-compose.yml'])
  if (prod === undefined) return
  const broker = (c: Compose): Record<string, string> => c.services['token-broker']?.environment as Record<string, string>
  const login = (c: Compose): Record<string, string> => c.services['login-api']?.environment as Record<string, string>
  t.equal(broker(prod).WECHAT_API_BASE_URL, 'https://api.weixin.qq.com', 'WeChat over HTTPS')
  t.notOk(broker(prod).WECHAT_API_ALLOW_HTTP, 'plain http not allowed')
  t.notOk(prod.services['wechat-sim'], 'no simulator')
  const dev = composeConfig(t, ['docker-compose.yml', 'docker-compose.sim.yml']) as Compose
  t.ok(dev.services['wechat-sim'], 'the override adds the simulator')
  t.equal(broker(dev).WECHAT_API_BASE_URL, 'http://wechat-sim:3999')
  t.equal(broker(dev).WECHAT_API_ALLOW_HTTP, 'true')
  for (const c of [prod, dev]) {
    t.same(Object.keys(login(c)).filter(k => k.startsWith('WECHAT_') && k !== 'WECHAT_APPID'), [], 'the login-api calls WeChat nowhere')
  }
})

t.test('the push override: the broker\'s push listener published (it alone), its secrets, the login-api receiving', async t => {
  const compose = composeConfig(t, ['docker-compose.yml', 'docker-compose.push.yml'])
  if (compose === undefined) return
  const broker = compose.services['token-broker'] as Record<string, any>
  t.equal(broker.environment.PUSH_PORT, '3002')
  t.equal(broker.environment.WECHAT_PUSH_TOKEN_FILE, '/run/secrets/push_token')
  // docker-compose renders ports as strings or objects, by version: either way, 3002 and not the API.
  const published = JSON.stringify(broker.ports)
  t.match(published, /3002/, 'the push port is published')
  t.notMatch(published, /3001|9465/, 'the API and metrics ports are not')
  t.equal((compose.services['login-api']?.environment as Record<string, string>).WECHAT_EVENTS_RECEIVE, 'true')
})

t.test('the Sentinel override: replicas, three sentinels, both services through them', async t => {
  const compose = composeConfig(t, ['docker-compose.yml', 'docker-compose.sentinel.yml'])
  if (compose === undefined) return
  const s = compose.services
  for (const name of ['sentinel-1', 'sentinel-2', 'sentinel-3']) t.ok(s[name]?.healthcheck, `${name} with a health check`)
  for (const name of ['redis-2', 'redis-3']) t.match((s[name]?.command as string[]).join(' '), /--replicaof redis-1 \d+ --masteruser replica/, `${name} replicates redis-1 as the replica user`)
  for (const name of ['token-broker', 'login-api']) {
    const env = s[name]?.environment as Record<string, string>
    t.match(env.REDIS_SENTINELS, /^sentinel-1:\d+,sentinel-2:\d+,sentinel-3:\d+$/)
    t.equal(env.REDIS_SENTINEL_MASTER, 'mymaster')
    t.equal(env.REDIS_URL, '', 'REDIS_URL emptied (at most one mode)')
  }
  t.equal((s['token-broker']?.environment as Record<string, string>).REDLOCK_URLS, '', 'one lock on the master')
  t.match(readFileSync(join(root, 'deploy/redis/users.acl.template'), 'utf8'), /^user sentinel on .*\+slaveof/m)
})

t.test('each service has its own Redis user; passwords come from secrets', async t => {
  const compose = composeConfig(t, ['docker-compose.yml'])
  if (compose === undefined) return
  const s = compose.services
  const env = (name: string): Record<string, string> => s[name]?.environment as Record<string, string>
  t.equal(env('token-broker').REDIS_USERNAME, 'token-broker')
  t.equal(env('token-broker').REDIS_PASSWORD_FILE, '/run/secrets/redis_broker_password')
  t.equal(env('login-api').REDIS_USERNAME, 'login-api')
  t.equal(env('login-api').REDIS_PASSWORD_FILE, '/run/secrets/redis_login_password')
  for (const name of ['redis-1', 'redis-2', 'redis-3']) {
    t.match((s[name]?.command as string[]).join(' '), /--aclfile \/run\/secrets\/redis_users_acl/, `${name} loads the ACL file`)
  }
  t.match(String(s['login-api']?.stop_grace_period), /^(40s|40)$/, 'a deploy waits for the slowest login')
  const loginEnv = s['login-api']?.environment as Record<string, string>
  t.equal(loginEnv.DATABASE_URL_FILE, '/run/secrets/database_url', 'users in PostgreSQL, its URL a secret')
  t.equal(loginEnv.MIGRATE_ON_START, 'true', 'compose applies the schema at start')
  t.match(s['login-api']?.depends_on, { postgres: { condition: 'service_healthy' } })
  t.equal((s.postgres?.environment as Record<string, string>).POSTGRES_PASSWORD_FILE, '/run/secrets/database_password')
})

t.test('dev-secrets: a private directory, the Redis ACL file rendered with password hashes', async t => {
  const dir = join(mkdtempSync(join(tmpdir(), 'secrets-')), 'secrets')
  const r = spawnSync(process.execPath, ['scripts/dev-secrets.mjs'], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', SECRETS_DIR: dir } })
  t.equal(r.status, 0, r.stderr)
  t.equal(statSync(dir).mode & 0o777, 0o700, 'no other user of the host can reach the secrets')
  const acl = readFileSync(join(dir, 'redis_users.acl'), 'utf8')
  const brokerPw = readFileSync(join(dir, 'redis_broker_password.txt'), 'utf8').trim()
  t.match(acl, new RegExp(`^user token-broker on #${createHash('sha256').update(brokerPw).digest('hex')} `, 'm'))
  t.notMatch(acl, brokerPw, 'only the hash is in the ACL file')
  t.notMatch(acl, /\{\{/, 'every placeholder filled')
  // Every right, behind a password nobody holds (its SHA-256 only): see the restart test below.
  t.match(acl, /^user default on #[0-9a-f]{64} resetkeys ~\* resetchannels &\* \+@all$/m)
  t.notMatch(acl, /nopass/, 'no user without a password')
  // The session signing keys: a JWKS the login-api accepts in jwt mode, mounted by compose.
  const { loadConfig } = await import('../packages/login-api/dist/app.js')
  const config = loadConfig({ BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'x'.repeat(40), WECHAT_APPID: 'wxdev0000000000001', SESSION_FORMAT: 'jwt', SESSION_SIGNING_KEYS_FILE: join(dir, 'session_signing_keys.json') })
  t.match(config.jwt?.keys, [{ alg: 'ES256', kid: /^es256-/ }], 'session_signing_keys.json is an ES256 JWKS the login-api loads')
  t.equal(statSync(join(dir, 'session_signing_keys.json')).mode & 0o777, 0o644, 'readable by the container user, inside the private directory')
  // The users' database: the login-api's URL carries the password the postgres service is given.
  const dbPw = readFileSync(join(dir, 'database_password.txt'), 'utf8').trim()
  t.equal(readFileSync(join(dir, 'database_url.txt'), 'utf8').trim(), `postgres://wxlogin:${dbPw}@postgres:5432/wxlogin`)
  t.equal(loadConfig({ BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'x'.repeat(40), WECHAT_APPID: 'wxdev0000000000001', PII_ENCRYPTION_KEY_FILE: join(dir, 'pii_keys.txt'), DATABASE_URL_FILE: join(dir, 'database_url.txt') }).database?.dialect, 'postgres')
})

t.test('the one Dockerfile: every COPY source exists; compose builds each service from it', async t => {
  const dockerfiles = ['Dockerfile', ...readdirSync(join(root, 'packages')).map(p => `packages/${p}/Dockerfile`)].filter(p => existsSync(join(root, p)))
  t.same(dockerfiles, ['Dockerfile'], 'one recipe, for every service')
  const compose = [read('docker-compose.yml'), read('docker-compose.sim.yml')].join('\n')
  for (const service of ['token-broker', 'login-api', 'wechat-sim']) t.match(compose, new RegExp(`SERVICE: ${service},`), `compose builds ${service} with SERVICE=${service}`)
  for (const file of dockerfiles) {
    const text = read(file)
    t.match(text, /^USER node$/m, `${file} runs as a non-root user`)
    t.match(text, /^HEALTHCHECK /m, `${file} has a HEALTHCHECK`)
    t.match(text, /--prod/, `${file} ships production dependencies only`)
    for (const line of text.split('\n').filter(l => /^COPY\s/.test(l) && !l.includes('--from='))) {
      const parts = line.replace(/--\S+/g, '').trim().split(/\s+/).slice(1, -1)
      for (const src of parts) t.ok(existsSync(join(root, src)), `${file}: COPY ${src} exists`)
    }
  }
  // The install layer is built from the manifests alone: a new workspace package must be listed.
  const dockerfile = read('Dockerfile')
  for (const pkg of readdirSync(join(root, 'packages')).filter(p => existsSync(join(root, 'packages', p, 'package.json')))) {
    t.match(dockerfile, new RegExp(`^COPY packages/${pkg}/package\\.json `, 'm'), `the Dockerfile installs from packages/${pkg}/package.json`)
  }
})

/** Metric names an expression reads: identifiers outside label matchers, ranges and grouping clauses. */
function metricNames (expr: string): string[] {
  const stripped = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset'])
  const names = new Set<string>()
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    const [, name, call] = m
    if (call === undefined && name !== undefined && !keywords.has(name) && !/^\d/.test(name)) names.add(name)
  }
  return [...names]
}

t.test('metricNames reads PromQL as intended', async t => {
  t.same(metricNames('histogram_quantile(0.99, sum by (le) (rate(token_broker_lock_wait_seconds_bucket[5m]))) > 2'), ['token_broker_lock_wait_seconds_bucket'])
  t.same(metricNames('sum by (source) (rate(a_total{x=~"$y"}[$__rate_interval])) / ignoring(source) group_left sum(rate(b_total[1m]))'), ['a_total', 'b_total'])
  t.same(metricNames('(g - time()) < 120'), ['g'])
})

t.test('the running services export every metric the dashboard and the alerts use, and promtool accepts their output', async t => {
  const ports = await stackPorts()
  const stack = run(t, 'scripts/start.mjs', { ...ports, LOG_LEVEL: 'warn' })
  // Its output is the diagnosis when it does not come up (a port taken, a service that exited).
  await waitFor(() => stack.output().includes('The stack is running'), { timeoutMs: 90_000, what: 'the stack to start' })
    .catch((err: Error) => { throw new Error(`${err.message}; pnpm start printed: ${stack.output().slice(-3000)}`) })
  const demo = run(t, 'scripts/demo.mjs', { SIM_URL: `http://127.0.0.1:${ports.SIM_PORT}`, LOGIN_URL: `http://127.0.0.1:${ports.LOGIN_PORT}` })
  t.equal(await demo.exited, 0, 'a login was driven through the stack')

  const scrape = async (port: string): Promise<string> => await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const outputs = { 'token-broker': await scrape(ports.BROKER_METRICS_PORT), 'login-api': await scrape(ports.LOGIN_METRICS_PORT) }

  const exported = new Set<string>()
  for (const text of Object.values(outputs)) {
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = m as unknown as [string, string, string]
      exported.add(name)
      if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix)
    }
  }
  const dashboard = JSON.parse(read('deploy/grafana/dashboards/wx-phone-login.json')) as { panels: Array<{ targets?: Array<{ expr: string }> }> }
  const exprs = dashboard.panels.flatMap(p => (p.targets ?? []).map(x => x.expr))
  const alerts = parse(read('deploy/prometheus/alerts.yml')) as { groups: Array<{ rules: Array<{ expr: string }> }> }
  exprs.push(...alerts.groups.flatMap(g => g.rules.map(r => r.expr)))
  const used = new Set(exprs.flatMap(metricNames))
  used.delete('up') // Prometheus' own, per scrape target
  t.ok(used.size >= 15, `the dashboard and alerts use ${used.size} metrics`)
  for (const name of used) t.ok(exported.has(name), `${name} is exported`)

  if (!tool(t, 'promtool')) return
  for (const [service, text] of Object.entries(outputs)) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
    // Exit 3 is "lint problems"; the only ones allowed are in prom-client's own default
    // metrics (gauges named *_total), which this project cannot rename.
    const problems = (r.stdout + r.stderr).split('\n').filter(Boolean)
      .filter(l => !/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/.test(l))
    t.ok(r.status === 0 || r.status === 3, `${service}: promtool parsed the output (exit ${r.status})`)
    t.same(problems, [], `${service}: no lint problems in this project's metrics`)
  }
})

t.test('the rendered ACL with AOF: a Lua script\'s writes survive a Redis restart (redis/redis#14541)', async t => {
  const dir = join(mkdtempSync(join(tmpdir(), 'acl-aof-')), 'secrets')
  const r = spawnSync(process.execPath, ['scripts/dev-secrets.mjs'], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', SECRETS_DIR: dir } })
  t.equal(r.status, 0, r.stderr)
  const password = readFileSync(join(dir, 'redis_login_password.txt'), 'utf8').trim()
  const data = mkdtempSync(join(tmpdir(), 'acl-aof-data-'))
  const redis = await startRedisServer(t, { args: ['--dir', data, '--appendonly', 'yes', '--aclfile', join(dir, 'redis_users.acl')] })
  const as = async (args: string[]): Promise<string> => await authed(redis.port, ['AUTH', 'login-api', password], args)
  t.match(await as(['EVAL', "redis.call('SET', KEYS[1], 'a') redis.call('SET', KEYS[2], 'b') return 1", '2', 'wxlogin:one', 'wxlogin:two']), /:1/)
  t.match(await redisCommand(redis.port, ['PING']), /NOAUTH/, 'a client without a password can do nothing')
  await redis.stop()
  await redis.start()
  // Up (NOAUTH to a PING) can come before the AOF is loaded (LOADING to everything else).
  const back = await waitFor(async () => { const r = await as(['MGET', 'wxlogin:one', 'wxlogin:two']); return r.startsWith('-LOADING') ? null : r }, { what: 'the AOF loaded', timeoutMs: 10_000, intervalMs: 50 })
  t.match(back, /\$1\r\na\r\n\$1\r\nb/, 'both writes of the script are back')
})

/** AUTH, then one command, on one socket: the command's reply. */
async function authed (port: number, auth: string[], args: string[]): Promise<string> {
  const wire = (a: string[]): string => `*${a.length}\r\n${a.map(x => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`
  return await new Promise((resolve, reject) => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    let text = ''
    sock.setTimeout(2000)
    sock.once('connect', () => sock.write(wire(auth) + wire(args)))
    sock.on('data', d => {
      text += d.toString()
      if (!text.startsWith('+OK\r\n')) { sock.destroy(); reject(new Error(`AUTH: ${text}`)); return }
      const reply = text.slice(5)
      if (complete(reply)) { sock.destroy(); resolve(reply) }
    })
    sock.once('error', err => { sock.destroy(); reject(err) })
    sock.once('timeout', () => { sock.destroy(); reject(new Error('timeout')) })
  })
}

/** A whole RESP reply of the simple kinds these tests read: a line, a bulk (or nil), an array of them. */
function complete (reply: string): boolean {
  const lines = reply.split('\r\n')
  let i = 0
  const item = (): boolean => {
    const line = lines[i++]
    if (line === undefined || i >= lines.length) return false
    if (line.startsWith('$') && line !== '$-1') i++
    return i < lines.length
  }
  if (reply.startsWith('*')) {
    const n = Number(lines[i++]?.slice(1))
    for (let k = 0; k < n; k++) if (!item()) return false
    return true
  }
  return item()
}
