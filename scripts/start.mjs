#!/usr/bin/env node
// Starts the WeChat simulator, the token-broker and the login-api on localhost, with
// generated development credentials, and stops all three on Ctrl-C. `pnpm start` builds first.
//
// Real WeChat: set WECHAT_APPID and WECHAT_SECRET (and no WECHAT_API_BASE_URL); the simulator
// is then not started. Shared stores: set REDIS_URL.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { prettyFactory } from 'pino-pretty'
// Only this module: the package's index would load nock as well.
import { startServiceProcess } from '../packages/testing/dist/service-process.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const env = process.env
const host = '127.0.0.1'
const port = (name, fallback) => Number(env[name] ?? fallback)
const ports = {
  sim: port('SIM_PORT', 3999),
  broker: port('BROKER_PORT', 3001),
  brokerMetrics: port('BROKER_METRICS_PORT', 9465),
  login: port('LOGIN_PORT', 3000),
  push: port('PUSH_PORT', 3002),
  loginMetrics: port('LOGIN_METRICS_PORT', 9464)
}

const realWechat = env.WECHAT_APPID !== undefined && env.WECHAT_SECRET !== undefined && env.WECHAT_API_BASE_URL === undefined
const appid = env.WECHAT_APPID ?? 'wxdev0000000000001'
const secret = env.WECHAT_SECRET ?? `dev-${randomBytes(16).toString('hex')}`
const clientToken = randomBytes(32).toString('base64url')
// WeChat's message push, from the simulator (POST /__sim/push) to the broker's push listener.
const pushToken = randomBytes(12).toString('hex')
const pushAesKey = randomBytes(32).toString('base64').replace(/[^A-Za-z0-9]/g, '').padEnd(43, 'A').slice(0, 43)
// Phone numbers are sealed at rest with this key (PII_ENCRYPTION_KEY_FILE). Kept between runs in
// deploy/secrets/ (never committed), so users stored in Redis by an earlier run stay readable.
function devPiiKeys () {
  if (env.PII_ENCRYPTION_KEY_FILE !== undefined) return { PII_ENCRYPTION_KEY_FILE: env.PII_ENCRYPTION_KEY_FILE }
  const file = `${root}deploy/secrets/dev-pii-keys.txt`
  if (!existsSync(file)) {
    mkdirSync(`${root}deploy/secrets`, { recursive: true, mode: 0o700 })
    writeFileSync(file, `dev:${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  }
  return { PII_ENCRYPTION_KEY: readFileSync(file, 'utf8').trim() }
}
const wechatBase = realWechat ? 'https://api.weixin.qq.com' : (env.WECHAT_API_BASE_URL ?? `http://${host}:${ports.sim}`)
const logLevel = env.LOG_LEVEL ?? 'info'

for (const pkg of ['wechat-sim', 'token-broker', 'login-api']) {
  if (!existsSync(`${root}packages/${pkg}/dist/server.js`)) {
    console.error(`packages/${pkg} is not built: run "pnpm start" (it builds) or "pnpm build" first.`)
    process.exit(1)
  }
}

const pretty = process.stdout.isTTY ? prettyFactory({ colorize: true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname,name' }) : null
const colours = { sim: '\x1b[35m', broker: '\x1b[36m', login: '\x1b[33m' }
const children = []

function start (name, script, childEnv) {
  const tag = pretty ? `${colours[name]}[${name}]\x1b[0m ` : `[${name}] `
  const proc = startServiceProcess(`${root}packages/${script}/dist/server.js`, {
    env: { PATH: env.PATH, NODE_ENV: env.NODE_ENV ?? 'development', LOG_LEVEL: logLevel, HOST: host, ...childEnv },
    onLine: line => {
      let text = line
      if (pretty && line.startsWith('{')) {
        try { text = pretty(line).trimEnd() } catch { /* not a log line */ }
      }
      process.stdout.write(`${tag}${text}\n`)
    }
  })
  const { child } = proc
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping the stack`)
      stop(1)
    }
  })
  children.push(proc)
  return child
}

async function ready (name, url) {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return
    } catch { /* not listening yet */ }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`${name} did not become ready at ${url}`)
}

let stopping = false
async function stop (code) {
  if (stopping) return
  stopping = true
  await Promise.all(children.map(async c => { await c.stop() }))
  process.exit(code)
}
process.on('SIGINT', () => { stop(0) })
process.on('SIGTERM', () => { stop(0) })

const redis = env.REDIS_URL !== undefined ? { REDIS_URL: env.REDIS_URL } : {}
try {
  if (!realWechat && env.WECHAT_API_BASE_URL === undefined) {
    start('sim', 'wechat-sim', {
      PORT: String(ports.sim),
      // The console's message-push settings, so that POST /__sim/push reaches the broker (pnpm demo).
      SIM_APPS: JSON.stringify([{ appid, secret, push_url: `http://${host}:${ports.push}/wechat/push/${appid}`, push_token: pushToken, push_aes_key: pushAesKey, push_mode: 'safe' }]),
      ...(env.SIM_TOKEN_EXPIRES_IN !== undefined ? { SIM_TOKEN_EXPIRES_IN: env.SIM_TOKEN_EXPIRES_IN } : {}),
      ...(env.SIM_LATENCY_MS !== undefined ? { SIM_LATENCY_MS: env.SIM_LATENCY_MS } : {})
    })
    await ready('sim', `http://${host}:${ports.sim}/__sim/calls`)
  }
  start('broker', 'token-broker', {
    PORT: String(ports.broker),
    METRICS_PORT: String(ports.brokerMetrics),
    WECHAT_APPID: appid,
    WECHAT_SECRET: secret,
    WECHAT_API_BASE_URL: wechatBase,
    WECHAT_API_ALLOW_HTTP: String(wechatBase.startsWith('http:')),
    BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token: clientToken, apps: [appid], events: ['*'] }]),
    PUSH_PORT: String(ports.push),
    WECHAT_PUSH_TOKEN: pushToken,
    WECHAT_PUSH_AES_KEY: pushAesKey,
    ...(env.TOKEN_REFRESH_AHEAD_SECONDS !== undefined ? { TOKEN_REFRESH_AHEAD_SECONDS: env.TOKEN_REFRESH_AHEAD_SECONDS } : {}),
    ...redis
  })
  await ready('broker', `http://${host}:${ports.broker}/healthz`)
  start('login', 'login-api', {
    PORT: String(ports.login),
    METRICS_PORT: String(ports.loginMetrics),
    WECHAT_APPID: appid,
    BROKER_URL: `http://${host}:${ports.broker}`,
    BROKER_TOKEN: clientToken,
    WECHAT_EVENTS_RECEIVE: 'true',
    ...devPiiKeys(),
    ...redis,
    // Users in your PostgreSQL or MySQL (docs/sql-users.md); the schema is applied at start here.
    ...(env.DATABASE_URL !== undefined ? { DATABASE_URL: env.DATABASE_URL, MIGRATE_ON_START: 'true' } : {})
  })
  await ready('login', `http://${host}:${ports.login}/readyz`)
} catch (err) {
  console.error(err.message)
  await stop(1)
}

const simLine = realWechat ? '  WeChat          https://api.weixin.qq.com (real; no simulator)' : `  WeChat sim      http://${host}:${ports.sim}        control API under /__sim`
console.log(`
The stack is running (${env.REDIS_URL !== undefined ? 'Redis' : 'memory stores, single replica'}):
${simLine}
  token-broker    http://${host}:${ports.broker}        metrics http://${host}:${ports.brokerMetrics}/metrics
  WeChat push     http://${host}:${ports.push}/wechat/push/${appid}   (token ${pushToken}, EncodingAESKey in this process)
  login-api       http://${host}:${ports.login}        metrics http://${host}:${ports.loginMetrics}/metrics
  appid           ${appid}
  broker token    in this process only (generated; pass BROKER_CLIENTS yourself to choose one)

Try it, in another terminal:
  pnpm demo
or by hand:
  CODE=$(curl -s -X POST http://${host}:${ports.sim}/__sim/login-codes -H 'content-type: application/json' -d '{}' | node -p 'JSON.parse(require("fs").readFileSync(0)).code')
  PHONE=$(curl -s -X POST http://${host}:${ports.sim}/__sim/phone-codes -H 'content-type: application/json' -d '{"phoneNumber":"13800138000"}' | node -p 'JSON.parse(require("fs").readFileSync(0)).code')
  curl -s -X POST http://${host}:${ports.login}/api/user/thirdLogin -H 'content-type: application/json' -d "{\\"code\\":\\"$CODE\\",\\"phoneCode\\":\\"$PHONE\\",\\"nickname\\":\\"demo\\"}"

Ctrl-C stops all three.
`)
