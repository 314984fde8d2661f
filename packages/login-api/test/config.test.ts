import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../src/config.js'

const base = { BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'tok-0123456789abcdef', WECHAT_APPID: 'wx0123456789' }

t.test('defaults from the contract', async t => {
  t.match(loadConfig(base), {
    host: '0.0.0.0',
    port: 3000,
    metricsPort: 9464,
    redisUrl: undefined,
    wechatBaseUrl: 'https://api.weixin.qq.com',
    phoneRateLimitMax: 5,
    phoneRateLimitWindowSeconds: 60,
    ipRateLimitMax: 60,
    ipRateLimitWindowSeconds: 60,
    sessionTtlSeconds: 604800,
    trustProxy: false
  })
})

t.test('TRUST_PROXY forms', async t => {
  t.equal(loadConfig({ ...base, TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ ...base, TRUST_PROXY: '2' }).trustProxy, 2)
  t.equal(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, '10.0.0.0/8, 127.0.0.1')
  t.throws(() => loadConfig({ ...base, TRUST_PROXY: 'maybe?' }), /TRUST_PROXY must be/)
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
