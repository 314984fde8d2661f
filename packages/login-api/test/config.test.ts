import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { TEST_PII_KEYS } from '@wxlogin/testing'
import { loadConfig } from '../src/config.js'

const base = { BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'tok-0123456789abcdef', WECHAT_APPID: 'wx0123456789' }

t.test('defaults from the contract', async t => {
  t.match(loadConfig(base), {
    host: '0.0.0.0',
    port: 3000,
    metricsPort: 9464,
    redis: undefined,
    phoneRateLimitMax: 5,
    phoneRateLimitWindowSeconds: 60,
    ipRateLimitMax: 60,
    ipRateLimitWindowSeconds: 60,
    sessionTtlSeconds: 604800,
    apps: ['wx0123456789'],
    eventsMaxLen: 100_000,
    eventsIncludePhone: false,
    trustProxy: { kind: 'none' }
  })
})

t.test('several mini-programs: LOGIN_APPS, or WECHAT_APPID for one; events', async t => {
  const { WECHAT_APPID: _one, ...noApp } = base
  t.same(loadConfig({ ...noApp, LOGIN_APPS: '["wxaaaaaaaaaaaa01","wxbbbbbbbbbbbb02"]' }).apps, ['wxaaaaaaaaaaaa01', 'wxbbbbbbbbbbbb02'])
  t.throws(() => loadConfig({ ...base, LOGIN_APPS: '["wxaaaaaaaaaaaa01"]' }), /LOGIN_APPS and WECHAT_APPID are both set/)
  t.throws(() => loadConfig(noApp), /WECHAT_APPID is required \(or LOGIN_APPS/)
  t.throws(() => loadConfig({ ...noApp, LOGIN_APPS: '[]' }), /LOGIN_APPS must be a non-empty JSON array/)
  t.throws(() => loadConfig({ ...noApp, LOGIN_APPS: '["not an appid"]' }), /LOGIN_APPS entry 0 is not an appid/)
  t.throws(() => loadConfig({ ...noApp, LOGIN_APPS: '["wxaaaaaaaaaaaa01","wxaaaaaaaaaaaa01"]' }), /LOGIN_APPS lists an appid twice/)
  t.match(loadConfig({ ...base, LOGIN_EVENTS_MAXLEN: '5000', EVENTS_INCLUDE_PHONE: 'true' }), { eventsMaxLen: 5000, eventsIncludePhone: true })
  t.throws(() => loadConfig({ ...base, LOGIN_EVENTS_MAXLEN: '10' }), /LOGIN_EVENTS_MAXLEN must be between/)
})

t.test('TRUST_PROXY forms', async t => {
  t.same(loadConfig({ ...base, TRUST_PROXY: 'false' }).trustProxy, { kind: 'none' })
  t.same(loadConfig({ ...base, TRUST_PROXY: '0' }).trustProxy, { kind: 'none' })
  // "Trust everything" would take the client's own left-most entry: true means one hop.
  t.same(loadConfig({ ...base, TRUST_PROXY: 'true' }).trustProxy, { kind: 'hops', hops: 1 })
  t.same(loadConfig({ ...base, TRUST_PROXY: '2' }).trustProxy, { kind: 'hops', hops: 2 })
  t.same(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,loopback' }).trustProxy, { kind: 'list', entries: ['10.0.0.0/8', '127.0.0.1', 'loopback'] })
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: 'maybe?' }), /TRUST_PROXY must be/)
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/99' }), /TRUST_PROXY holds an invalid/)
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: '50' }), /hop count above 10/)
})

t.test('the login-api holds no WeChat credential and calls WeChat nowhere: no WeChat URL to set', async t => {
  const config = loadConfig({ ...base, WECHAT_API_BASE_URL: 'http://wechat-sim:3999' }) as unknown as Record<string, unknown>
  t.notOk(Object.keys(config).some(k => /wechat(Base|Timeout|Api|Secret)/i.test(k)), 'a leftover WECHAT_API_BASE_URL is ignored')
  t.notOk(JSON.stringify(config).includes('wechat-sim'), 'and held nowhere')
})

t.test('Redis credentials: REDIS_USERNAME and REDIS_PASSWORD beside a URL that names none', async t => {
  t.match(loadConfig({ ...base, REDIS_URL: 'redis://redis-1:6400', REDIS_USERNAME: 'login-api', REDIS_PASSWORD: 'pw', REDIS_COMMAND_TIMEOUT_MS: '750', PII_ENCRYPTION_KEY: TEST_PII_KEYS }).redis,
    { url: 'redis://redis-1:6400', username: 'login-api', password: 'pw', commandTimeoutMs: 750 })
})

const bad: Array<[Record<string, string | undefined>, RegExp]> = [
  [{ ...base, BROKER_URL: undefined }, /BROKER_URL is required/],
  [{ ...base, BROKER_TOKEN: undefined }, /BROKER_TOKEN is required/],
  [{ ...base, WECHAT_APPID: undefined }, /WECHAT_APPID is required/],
  [{ ...base, PHONE_RATE_LIMIT_MAX: '0' }, /PHONE_RATE_LIMIT_MAX must be between/],
  [{ ...base, SESSION_TTL_SECONDS: 'week' }, /SESSION_TTL_SECONDS must be a whole number/],
  [{ ...base, BROKER_URL: 'ftp://x' }, /BROKER_URL must be a http: or https: URL/]
]
for (const [env, message] of bad) {
  t.test(`rejects: ${message.source}`, async t => { t.throws(() => loadConfig(env), message) })
}

t.test('the server exits with one clear line on bad configuration', async t => {
  const server = fileURLToPath(new URL('../dist/server.js', import.meta.url))
  const r = spawnSync(process.execPath, [server], { env: { PATH: process.env.PATH, BROKER_URL: 'http://x', WECHAT_APPID: 'wx1' }, encoding: 'utf8', timeout: 20_000 })
  t.equal(r.status, 1)
  t.equal(r.stderr, 'login-api: Invalid configuration: BROKER_TOKEN is required (or BROKER_TOKEN_FILE)\n')
})

t.test('DATABASE_URL: the dialect from the scheme, bounds with defaults, the URL never in an error', async t => {
  const pii = { PII_ENCRYPTION_KEY: TEST_PII_KEYS }
  t.equal(loadConfig(base).database, undefined, 'unset: users stay where they were')
  t.same(loadConfig({ ...base, ...pii, DATABASE_URL: 'postgres://u:secret-pw@db:5432/users' }).database,
    { url: 'postgres://u:secret-pw@db:5432/users', dialect: 'postgres', poolSize: 10, statementTimeoutMs: 2000, connectTimeoutMs: 3000, migrateOnStart: false })
  t.match(loadConfig({ ...base, ...pii, DATABASE_URL: 'mysql://u:p@db/users', DATABASE_POOL_SIZE: '4', DATABASE_STATEMENT_TIMEOUT_MS: '500', DATABASE_CONNECT_TIMEOUT_MS: '700', MIGRATE_ON_START: 'true' }).database,
    { dialect: 'mysql', poolSize: 4, statementTimeoutMs: 500, connectTimeoutMs: 700, migrateOnStart: true })
  t.throws(() => loadConfig({ ...base, DATABASE_URL: 'postgres://u:p@db/users' }), /PII_ENCRYPTION_KEY_FILE is required with a persistent store \(Redis or DATABASE_URL\)/, 'phones are sealed in SQL too')
  for (const bad of ['sqlite:///tmp/x.db', 'not a url with secret-pw', 'postgres://u:secret-pw@db']) {
    const err = (() => { try { loadConfig({ ...base, ...pii, DATABASE_URL: bad }) } catch (e) { return e as Error } })()
    t.match(err?.message, /^Invalid configuration: DATABASE_URL /, bad.replace('secret-pw', '***'))
    t.notMatch(err?.message, /secret-pw/)
  }
})

t.test('LOGIN_RISK_POLICY: off by default, observe or enforce, nothing else; LOGIN_RISK_MAX_RANK 0-4', async t => {
  t.same(loadConfig(base).risk, { policy: 'off', maxRank: 3 })
  t.same(loadConfig({ ...base, LOGIN_RISK_POLICY: 'enforce', LOGIN_RISK_MAX_RANK: '1' }).risk, { policy: 'enforce', maxRank: 1 })
  t.throws(() => loadConfig({ ...base, LOGIN_RISK_POLICY: 'strict' }), /LOGIN_RISK_POLICY must be off, observe or enforce/)
  t.throws(() => loadConfig({ ...base, LOGIN_RISK_MAX_RANK: '5' }), /LOGIN_RISK_MAX_RANK/)
})
