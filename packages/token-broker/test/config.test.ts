import { createHash } from 'node:crypto'
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '@wxlogin/service-kit'
import { loadConfig } from '../src/config.js'

const clients = JSON.stringify([{ name: 'login-api', token: 'a-client-token-of-length-0123456789', apps: ['*'] }])
const base = { WECHAT_APPID: 'wx1234567890', WECHAT_SECRET: 'sec', BROKER_CLIENTS: clients }

t.test('defaults from the contract', async t => {
  const c = loadConfig(base)
  t.match(c, {
    host: '0.0.0.0',
    port: 3001,
    metricsPort: 9465,
    logLevel: 'info',
    redis: undefined,
    redlock: [],
    wechatBaseUrl: 'https://api.weixin.qq.com',
    refreshAheadSeconds: 300,
    lockTtlMs: 3000,
    forceRefreshGraceMs: 60_000,
    apps: [{ appid: 'wx1234567890', secret: 'sec', tokenMode: 'stable' }],
    clients: [{ name: 'login-api', apps: ['*'], admin: false }]
  })
})

t.test('admin clients (the quota reset); the force_refresh grace period', async t => {
  const c = loadConfig({
    ...base,
    TOKEN_FORCE_REFRESH_GRACE_SECONDS: '5',
    BROKER_CLIENTS: JSON.stringify([{ name: 'ops', token: 'an-admin-token-of-length-0123456789', apps: ['*'], admin: true }, { name: 'svc', token: 'a-client-token-of-length-0123456789', apps: ['wx1'] }])
  })
  t.same(c.clients.map(x => [x.name, x.admin]), [['ops', true], ['svc', false]])
  t.equal(c.forceRefreshGraceMs, 5000)
})

t.test('BROKER_CLIENTS keeps only hashes: token, token_sha256, and lists of either while a token rotates', async t => {
  const sha = (x: string): string => createHash('sha256').update(x).digest('hex')
  const c = loadConfig({
    ...base,
    BROKER_CLIENTS: JSON.stringify([
      { name: 'a', token: 'a-client-token-of-length-0123456789', apps: ['*'] },
      { name: 'b', token_sha256: sha('b-client-token-of-length-0123456789').toUpperCase(), apps: ['*'] },
      { name: 'c', tokens: ['c-old-client-token-of-length-012345'], tokens_sha256: [sha('c-new-client-token-of-length-012345')], apps: ['*'] }
    ])
  })
  t.same(c.clients.map(x => x.tokenHashes), [[sha('a-client-token-of-length-0123456789')], [sha('b-client-token-of-length-0123456789')], [sha('c-old-client-token-of-length-012345'), sha('c-new-client-token-of-length-012345')]])
  t.notMatch(JSON.stringify(c.clients), /client-token-of-length/, 'no token in clear is kept')
})

t.test('REDLOCK_URLS defaults to REDIS_URL; several apps; classic mode', async t => {
  const c = loadConfig({
    BROKER_CLIENTS: clients,
    REDIS_URL: 'redis://127.0.0.1:7000',
    WECHAT_TOKEN_MODE: 'classic',
    WECHAT_APPS: JSON.stringify([{ appid: 'wxa', secret: 's1' }, { appid: 'wxb', secret: 's2', token_mode: 'stable' }])
  })
  t.same(c.redlock.map(l => l.url), ['redis://127.0.0.1:7000'])
  t.same(c.apps.map(a => a.tokenMode), ['classic', 'stable'])
  const q = loadConfig({ ...base, REDIS_URL: 'redis://h1:1', REDLOCK_URLS: 'redis://h1:1, redis://h2:2,redis://h3:3' })
  t.same(q.redlock.map(l => l.url), ['redis://h1:1', 'redis://h2:2', 'redis://h3:3'])
})

t.test('Redis credentials apply to the store and every lock server; the URL may come from a file', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-redis-'))
  writeFileSync(join(dir, 'url'), 'redis://redis-1:6400\n')
  writeFileSync(join(dir, 'password'), 'broker-redis-password\n')
  const c = loadConfig({ ...base, REDIS_URL_FILE: join(dir, 'url'), REDIS_USERNAME: 'token-broker', REDIS_PASSWORD_FILE: join(dir, 'password'), REDLOCK_URLS: 'redis://redis-1:6400,redis://redis-2:6400,redis://redis-3:6400' })
  t.match(c.redis, { url: 'redis://redis-1:6400', username: 'token-broker', password: 'broker-redis-password', tls: false, commandTimeoutMs: 1000 })
  t.same(c.redlock.map(l => [l.url, l.username, l.password]), [
    ['redis://redis-1:6400', 'token-broker', 'broker-redis-password'],
    ['redis://redis-2:6400', 'token-broker', 'broker-redis-password'],
    ['redis://redis-3:6400', 'token-broker', 'broker-redis-password']
  ])
  t.throws(() => loadConfig({ ...base, REDIS_PASSWORD: 'x' }), /REDIS_PASSWORD is set but no Redis is/)
})

t.test('Redis topologies: one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES; the lock on the store itself without REDLOCK_URLS', async t => {
  const sentinel = loadConfig({ ...base, REDIS_SENTINELS: 's1:26400, s2:26400,[::1]:26380', REDIS_PASSWORD: 'pw' })
  t.match(sentinel.redis, { sentinels: [{ host: 's1', port: 26400 }, { host: 's2', port: 26400 }, { host: '::1', port: 26380 }], sentinelMaster: 'mymaster', password: 'pw', waitReplicas: 1 })
  t.equal(sentinel.redlock.length, 1)
  t.equal(sentinel.redlock[0], sentinel.redis, 'a single lock on the Sentinel master')
  const cluster = loadConfig({ ...base, REDIS_CLUSTER_NODES: 'c1:7000,c2:7001', REDIS_WAIT_REPLICAS: '0' })
  t.match(cluster.redis, { clusterNodes: [{ host: 'c1', port: 7000 }, { host: 'c2', port: 7001 }], waitReplicas: 0 })
  t.equal(cluster.redlock[0], cluster.redis, 'a single lock on the app\'s own slot')
  t.equal(loadConfig({ ...base, REDIS_URL: 'redis://r:6400' }).redis?.waitReplicas, 0, 'no WAIT against a lone server by default')
  t.equal(loadConfig({ ...base, REDIS_SENTINELS: 's1:26400', REDIS_SENTINEL_MASTER: 'wx' }).redis?.sentinelMaster, 'wx')
  t.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://r:6400', REDIS_CLUSTER_NODES: 'c1:7000' }), /REDIS_URL and REDIS_CLUSTER_NODES are both set; set one/)
  t.throws(() => loadConfig({ ...base, REDIS_SENTINELS: 's1:26400', REDIS_CLUSTER_NODES: 'c1:7000' }), /REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set/)
  t.throws(() => loadConfig({ ...base, REDIS_SENTINELS: 's1' }), /REDIS_SENTINELS must be a comma-separated list of host:port/)
  t.throws(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: 'c1:99999' }), /REDIS_CLUSTER_NODES must be/)
  t.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://r:6400', REDIS_SENTINEL_MASTER: 'x' }), /REDIS_SENTINEL_MASTER needs REDIS_SENTINELS/)
})

t.test('WeChat over plain http only when explicitly allowed (the appsecret travels with every token call)', async t => {
  t.throws(() => loadConfig({ ...base, WECHAT_API_BASE_URL: 'http://wechat-sim:3999' }), /WECHAT_API_BASE_URL is plain http.*WECHAT_API_ALLOW_HTTP=true/)
  t.equal(loadConfig({ ...base, WECHAT_API_BASE_URL: 'http://wechat-sim:3999', WECHAT_API_ALLOW_HTTP: 'true' }).wechatBaseUrl, 'http://wechat-sim:3999')
  t.equal(loadConfig({ ...base, WECHAT_API_BASE_URL: 'https://proxy.example/' }).wechatBaseUrl, 'https://proxy.example')
})

t.test('the invalidation budget: half of WeChat\'s allowance by default, never above it', async t => {
  t.same(loadConfig(base).invalidationBudget, { stable: 10, classic: 1000 })
  t.same(loadConfig({ ...base, TOKEN_INVALIDATION_DAILY_BUDGET: '5' }).invalidationBudget, { stable: 5, classic: 5 })
  t.throws(() => loadConfig({ ...base, TOKEN_INVALIDATION_DAILY_BUDGET: '100' }), /TOKEN_INVALIDATION_DAILY_BUDGET is above 20/)
  t.same(loadConfig({ ...base, WECHAT_TOKEN_MODE: 'classic', TOKEN_INVALIDATION_DAILY_BUDGET: '100' }).invalidationBudget, { stable: 100, classic: 100 })
})

t.test('_FILE forms read secrets from files', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-cfg-'))
  writeFileSync(join(dir, 'secret'), 'from-file\n')
  writeFileSync(join(dir, 'clients'), clients)
  const c = loadConfig({ WECHAT_APPID: 'wx1', WECHAT_SECRET_FILE: join(dir, 'secret'), BROKER_CLIENTS_FILE: join(dir, 'clients') })
  t.equal(c.apps[0]?.secret, 'from-file')
  t.equal(c.clients[0]?.name, 'login-api')
  t.throws(() => loadConfig({ ...base, WECHAT_SECRET: undefined, WECHAT_SECRET_FILE: join(dir, 'missing') }), /WECHAT_SECRET_FILE names a file that cannot be read/)
})

const bad: Array<[Record<string, string | undefined>, RegExp]> = [
  [{ ...base, BROKER_CLIENTS: undefined }, /BROKER_CLIENTS is required/],
  [{ ...base, BROKER_CLIENTS: '[' }, /BROKER_CLIENTS is not valid JSON/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"short","apps":["*"]}]' }, /BROKER_CLIENTS client x: token 1 is shorter than 32 characters/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"abababababababababababababababababab","apps":["*"]}]' }, /BROKER_CLIENTS client x: token 1 has fewer than 8 distinct characters/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"a-client-token with-a-space-0123456789","apps":["*"]}]' }, /BROKER_CLIENTS client x: token 1 contains whitespace/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"a-client-token-of-length-0123456789\\n","apps":["*"]}]' }, /BROKER_CLIENTS client x: token 1 contains whitespace/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"a-client-token-of-length-0123456789","apps":["*"]},{"name":"y","tokens":["another-client-token-0123456789abc","a-client-token-of-length-0123456789"],"apps":["*"]}]' }, /BROKER_CLIENTS client y: has the same token as client x/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","tokens":[],"apps":["*"]}]' }, /BROKER_CLIENTS client x: "tokens" must be a non-empty list/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token_sha256":"abc","apps":["*"]}]' }, /BROKER_CLIENTS client x: token_sha256 1 is not 64 hex digits/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","apps":["*"]}]' }, /BROKER_CLIENTS client x: needs "token", "token_sha256", "tokens" or "tokens_sha256"/],
  [{ ...base, WECHAT_APPID: undefined }, /WECHAT_APPID is required/],
  [{ ...base, WECHAT_SECRET: undefined }, /WECHAT_SECRET is required/],
  [{ ...base, WECHAT_APPS: '[]' }, /WECHAT_APPS and WECHAT_APPID are both set/],
  [{ BROKER_CLIENTS: clients, WECHAT_APPS: '[{"appid":"wx1"}]' }, /WECHAT_APPS entry 0 has no "secret"/],
  [{ ...base, BROKER_CLIENTS: '[{"name":"x","token":"a-client-token-of-length-0123456789","apps":["*"],"admin":"yes"}]' }, /BROKER_CLIENTS client x: "admin" must be true or false/],
  [{ ...base, TOKEN_FORCE_REFRESH_GRACE_SECONDS: '-1' }, /TOKEN_FORCE_REFRESH_GRACE_SECONDS must be between/],
  [{ ...base, WECHAT_TOKEN_MODE: 'fast' }, /WECHAT_TOKEN_MODE must be "stable" or "classic"/],
  [{ ...base, PORT: 'eighty' }, /PORT must be a whole number/],
  [{ ...base, PORT: '70000' }, /PORT must be between/],
  [{ ...base, REDIS_URL: 'http://x' }, /REDIS_URL must be a redis: or rediss: URL/],
  [{ ...base, WECHAT_API_BASE_URL: 'not a url' }, /WECHAT_API_BASE_URL is not a valid URL/],
  [{ ...base, LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
  [{ ...base, WECHAT_SECRET_FILE: '/x' }, /WECHAT_SECRET and WECHAT_SECRET_FILE are both set/]
]
for (const [env, message] of bad) {
  t.test(`rejects: ${message.source}`, async t => {
    t.throws(() => loadConfig(env), message)
    try { loadConfig(env) } catch (err) {
      t.ok(err instanceof ConfigError)
      t.notMatch((err as Error).message, /sec\b|a-client-token/, 'no value in the message')
    }
  })
}

t.test('the server exits with one clear line on bad configuration', async t => {
  const server = fileURLToPath(new URL('../dist/server.js', import.meta.url))
  const r = spawnSync(process.execPath, [server], { env: { PATH: process.env.PATH, WECHAT_APPID: 'wx1', WECHAT_SECRET: 'topsecret' }, encoding: 'utf8', timeout: 20_000 })
  t.equal(r.status, 1)
  t.equal(r.stderr, 'token-broker: Invalid configuration: BROKER_CLIENTS is required (or BROKER_CLIENTS_FILE)\n')
})

t.test('PHONE_USAGE_*: polled every 600 s once spu ids are set; 0 is off; ids are digits', async t => {
  t.equal(loadConfig(base).phoneUsage, undefined, 'no spu ids: no poll')
  t.same(loadConfig({ ...base, PHONE_USAGE_SPU_IDS: '10000077, 10000078' }).phoneUsage, { pollMs: 600_000, spuIds: ['10000077', '10000078'] })
  t.equal(loadConfig({ ...base, PHONE_USAGE_SPU_IDS: '10000077', PHONE_USAGE_POLL_SECONDS: '0' }).phoneUsage, undefined)
  t.throws(() => loadConfig({ ...base, PHONE_USAGE_SPU_IDS: 'abc' }), /PHONE_USAGE_SPU_IDS holds "abc"/)
  t.throws(() => loadConfig({ ...base, PHONE_USAGE_SPU_IDS: '1', PHONE_USAGE_POLL_SECONDS: '5' }), /at least 60/)
})

t.test('gateway fields of BROKER_CLIENTS: apis, token_form, gateway_rate, gateway_concurrency', async t => {
  const one = (extra: object): string => JSON.stringify([{ name: 'svc', token: 'a-client-token-of-length-0123456789', apps: ['*'], ...extra }])
  const c = loadConfig({ ...base, BROKER_CLIENTS: one({ apis: ['/wxa/*'], token_form: 'surrogate', gateway_rate: 20, gateway_concurrency: 4 }) })
  t.match(c.clients[0], { apis: ['/wxa/*'], tokenForm: 'surrogate', gatewayRate: 20, gatewayConcurrency: 4 })
  t.match(loadConfig(base).clients[0], { tokenForm: 'real', gatewayRate: undefined, gatewayConcurrency: undefined }, 'real tokens and no bounds by default')
  t.throws(() => loadConfig({ ...base, BROKER_CLIENTS: one({ token_form: 'fake' }) }), /"token_form" must be "real" or "surrogate"/)
  t.throws(() => loadConfig({ ...base, BROKER_CLIENTS: one({ gateway_rate: 0 }) }), /"gateway_rate" must be a whole number of at least 1/)
  t.throws(() => loadConfig({ ...base, BROKER_CLIENTS: one({ gateway_concurrency: 1.5 }) }), /"gateway_concurrency" must be/)
  t.throws(() => loadConfig({ ...base, BROKER_CLIENTS: one({ apis: ['wxa'] }) }), /"apis" must be a list of WeChat paths/)
})
