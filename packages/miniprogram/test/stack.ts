import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createSimulator, CONTROL_PREFIX, type Simulator } from '@wxlogin/wechat-sim'
import { freePort, startRedisServer, startServiceProcess, TEST_PII_KEYS, waitServiceReady } from '@wxlogin/testing'
import type { RequestAnswer, WxApi } from '../src/index.js'

// The real stack the mini-program talks to: the simulator (in this process, so its counts can
// be read), the token-broker and the login-api as processes from their built output, one Redis.

export const APPID = 'wxminiprogram0001'
const SECRET = 'mini-program-test-secret'
const CLIENT_TOKEN = randomBytes(32).toString('base64url')
const dist = (pkg: string): string => fileURLToPath(new URL(`../../${pkg}/dist/server.js`, import.meta.url))

export interface MiniStack { sim: Simulator, simUrl: string, loginUrl: string }

async function started (t: Test, script: string, env: Record<string, string>): Promise<string> {
  // A port found free can be taken by another test's server before the service binds it (the
  // packages' tests run side by side): the service then exits, and starts again on other ports.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const proc = startServiceProcess(script, { env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(await freePort()), LOG_LEVEL: 'warn', ...env } })
    t.teardown(async () => { await proc.stop() })
    const url = `http://127.0.0.1:${port}`
    try {
      await waitServiceReady(proc, async () => (await fetch(`${url}/readyz`)).status === 200, { what: `${script} ready`, timeoutMs: 30_000 })
      return url
    } catch (err) {
      if (attempt === 3 || !proc.output().includes('EADDRINUSE')) throw err
    }
  }
}

export async function miniStack (t: Test, loginEnv: Record<string, string> = {}): Promise<MiniStack> {
  const redis = await startRedisServer(t)
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  const simUrl = `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}`
  const common = { WECHAT_APPID: APPID, WECHAT_API_BASE_URL: simUrl, WECHAT_API_ALLOW_HTTP: 'true', REDIS_URL: redis.url }
  const broker = await started(t, dist('token-broker'), { ...common, WECHAT_SECRET: SECRET, BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token: CLIENT_TOKEN, apps: [APPID] }]) })
  const loginUrl = await started(t, dist('login-api'), { ...common, BROKER_URL: broker, BROKER_TOKEN: CLIENT_TOKEN, PII_ENCRYPTION_KEY: TEST_PII_KEYS, IP_RATE_LIMIT_MAX: '100000', ...loginEnv })
  return { sim, simUrl, loginUrl }
}

export interface FakeWx extends WxApi {
  storage: Map<string, unknown>
  /** Each wx.request's path, in order. */
  requests: string[]
  /** Each wx.request's headers, in the same order. */
  headers: Array<Record<string, string>>
  logins: number
  /** The next requests to a path matching this reach the server, but their answer is lost. */
  dropAnswers: (path: RegExp, count: number) => void
  /** The next wx.login calls return these codes (then real ones again). */
  nextCodes: string[]
}

/**
 * `wx` as the mini-program runtime offers it, on the real stack: `request` is real HTTP, `login`
 * mints a code for `openid` at the simulator, storage is a map, random values are random.
 */
export function fakeWx (stack: MiniStack, openid: string): FakeWx {
  const storage = new Map<string, unknown>()
  const drops: Array<{ path: RegExp, left: number }> = []
  const wx: FakeWx = {
    storage,
    requests: [],
    headers: [],
    logins: 0,
    nextCodes: [],
    dropAnswers: (path, count) => { drops.push({ path, left: count }) },
    login: (opts) => {
      wx.logins++
      const preset = wx.nextCodes.shift()
      const code = preset !== undefined
        ? Promise.resolve(preset)
        : fetch(`${stack.simUrl}${CONTROL_PREFIX}/login-codes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ appid: APPID, openid }) }).then(async r => (await r.json() as { code: string }).code)
      code.then(c => { opts.success?.({ code: c }) }, () => { opts.fail?.({ errMsg: 'login:fail' }) })
    },
    request: (opts) => {
      const path = new URL(opts.url).pathname
      wx.requests.push(path)
      wx.headers.push({ ...opts.header })
      const drop = drops.find(d => d.left > 0 && d.path.test(path))
      if (drop !== undefined) drop.left--
      const body = opts.data === undefined ? undefined : typeof opts.data === 'string' ? opts.data : JSON.stringify(opts.data)
      fetch(opts.url, { method: opts.method ?? 'GET', headers: opts.header, body, signal: AbortSignal.timeout(opts.timeout ?? 60_000) }).then(async res => {
        const text = await res.text()
        let data: unknown = text
        try { data = JSON.parse(text) } catch {}
        const header: Record<string, string> = {}
        res.headers.forEach((v, k) => { header[k === 'retry-after' ? 'Retry-After' : k] = v })
        // The server answered; the mini-program never hears it (a mobile network dropping it).
        if (drop !== undefined) opts.fail?.({ errMsg: 'request:fail' })
        else opts.success?.({ statusCode: res.status, data, header } satisfies RequestAnswer)
      }, (err: Error) => { opts.fail?.({ errMsg: err.name === 'TimeoutError' ? 'request:fail timeout' : 'request:fail' }) })
    },
    getStorageSync: key => storage.get(key) ?? '',
    setStorageSync: (key, value) => { storage.set(key, JSON.parse(JSON.stringify(value))) },
    removeStorageSync: key => { storage.delete(key) },
    getRandomValues: opts => { opts.success?.({ randomValues: new Uint8Array(randomBytes(opts.length)).buffer }) }
  }
  return wx
}

/** A phone code for `openid` at the simulator, as the phone button would produce. */
export async function phoneCode (stack: MiniStack, openid: string, phoneNumber = '13800138000'): Promise<string> {
  const r = await fetch(`${stack.simUrl}${CONTROL_PREFIX}/phone-codes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ appid: APPID, openid, phoneNumber }) })
  return (await r.json() as { code: string }).code
}
