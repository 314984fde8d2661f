// The soak's load: journeys started at a fixed rate whatever the answers (an open loop), by a
// client that does what @wxlogin/miniprogram does with a lost answer or a 503: the same body, its
// codes and retry_key unchanged, again, here on the other instance. Plus gateway checks and an
// SDK-shaped caller that reads access_tokens from the brokers and reports 40001s.
import { randomBytes } from 'node:crypto'
import { APPS, SDK_TOKEN } from './stack.mjs'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const pick = list => list[Math.floor(Math.random() * list.length)]
/** A client gives up on an answer after this, as the mini-program's wx.request does (ms). */
const CLIENT_TIMEOUT_MS = 10_000
/** And on a journey, resending all along, after this (ms). */
const JOURNEY_DEADLINE_MS = 60_000

async function send (url, { method = 'POST', body, token } = {}) {
  const started = Date.now()
  const headers = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  try {
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) })
    const text = await res.text()
    let data = null
    try { data = JSON.parse(text) } catch {}
    return { status: res.status, data, ms: Date.now() - started, retryAfter: Number(res.headers.get('retry-after') ?? 0) }
  } catch {
    return { status: 0, data: null, ms: Date.now() - started }
  }
}

export class Load {
  constructor (stack, { rate }) {
    this.stack = stack
    this.rate = rate
    /** Every answer a client got: { at, kind, path, status, error, ms, resend }. */
    this.answers = []
    /** Each journey's end: { kind, start, end, status, error, attempts }. */
    this.journeys = []
    /** Sessions answered 200: { token, openid, appid, userId }. */
    this.sessions = []
    /** user_ids seen per app:openid and per unionid. */
    this.byIdentity = new Map()
    this.byUnionid = new Map()
    this.users = []
    this.phoneCodes = 0
    this.sdk = { reads: 0, rejected40001: 0, invalidations: 0, errors: 0 }
    this.running = false
    this.inflight = new Set()
  }

  note (map, key, userId) {
    const set = map.get(key) ?? new Set()
    set.add(userId)
    map.set(key, set)
  }

  async mint (appid, openid, unionid, withPhone) {
    const code = (await this.stack.simPost('/login-codes', { appid, openid, unionid })).code
    if (!withPhone) return { code }
    this.phoneCodes++
    return { code, phoneCode: (await this.stack.simPost('/phone-codes', { appid, openid, phoneNumber: `138${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}` })).code }
  }

  /** The same request until it is answered for good: a lost answer or a 503 is sent again, to the other instance. */
  async resend (kind, path, { body, token, method }) {
    const start = Date.now()
    let i = Math.floor(Math.random() * 2)
    let pause = 250
    for (let attempt = 0; ; attempt++) {
      const r = await send(`${this.stack.logins[i % 2].url}${path}`, { method, body, token })
      this.answers.push({ at: Date.now(), kind, path, status: r.status, error: r.data?.error, ms: r.ms, resend: attempt > 0 })
      const again = r.status === 0 || r.status === 503 || r.status === 429
      if (!again || Date.now() - start > JOURNEY_DEADLINE_MS) {
        this.journeys.push({ kind, start, end: Date.now(), status: r.status, error: r.data?.error, attempts: attempt + 1 })
        return r
      }
      await sleep(r.status === 429 ? Math.max(1000, r.retryAfter * 1000) : pause)
      pause = Math.min(pause * 2, 2000)
      i++
    }
  }

  keep (r, appid, openid, unionid) {
    if (r.status !== 200) return
    const userId = r.data.user.user_id
    this.note(this.byIdentity, `${appid}:${openid}`, userId)
    if (unionid !== null) this.note(this.byUnionid, unionid, userId)
    this.sessions.push({ token: r.data.token, openid, appid, userId, at: Date.now(), unionid })
    return userId
  }

  async newUser (lost) {
    const appid = pick(APPS)
    const openid = `o-${randomBytes(9).toString('base64url')}`
    const unionid = Math.random() < 0.5 ? `u-${openid}` : null
    const body = { ...await this.mint(appid, openid, unionid, lost || Math.random() < 0.75), appid, retry_key: randomBytes(16).toString('hex') }
    const kind = lost ? 'lost-answer' : 'new-user'
    const first = await this.resend(kind, '/api/user/thirdLogin', { body })
    // The answer never reached the phone: the client sends the same body once more.
    const r = lost ? await this.resend(kind, '/api/user/thirdLogin', { body }) : first
    if (lost && first.status === 200 && r.status === 200 && first.data.user.user_id !== r.data.user.user_id) this.mismatches = (this.mismatches ?? 0) + 1
    this.keep(first, appid, openid, unionid)
    if (lost) this.keep(r, appid, openid, unionid)
    if (r.status === 200) this.users.push({ appid, openid, unionid })
  }

  async returning () {
    const u = pick(this.users)
    if (u === undefined) return await this.newUser(false)
    // A user with a unionid sometimes comes from the other mini-program: the same user_id.
    const other = u.unionid !== null && Math.random() < 0.3
    const appid = other ? APPS.find(a => a !== u.appid) : u.appid
    const openid = other ? `${u.openid}-2` : u.openid
    const body = { ...await this.mint(appid, openid, u.unionid, Math.random() < 0.3), appid, retry_key: randomBytes(16).toString('hex') }
    this.keep(await this.resend(other ? 'other-app' : 'returning', '/api/user/thirdLogin', { body }), appid, openid, u.unionid)
  }

  async bindPhone () {
    const s = pick(this.sessions)
    if (s === undefined) return
    const { phoneCode } = await this.mint(s.appid, s.openid, null, true)
    await this.resend('bind-phone', '/api/user/phone', { body: { phoneCode }, token: s.token })
  }

  async gateway () {
    const s = pick(this.sessions)
    if (s === undefined) return
    const r = await send(`${pick(this.stack.logins).url}/api/user/session`, { method: 'GET', token: s.token })
    this.answers.push({ at: Date.now(), kind: 'gateway', path: '/api/user/session', status: r.status, error: r.data?.error, ms: r.ms, resend: false })
  }

  /** An SDK on a broker: reads the token, uses it at WeChat, and reports a 40001 back. */
  async sdkCall () {
    const broker = pick(this.stack.brokers)
    const appid = pick(APPS)
    const headers = { authorization: `Bearer ${SDK_TOKEN}`, 'content-type': 'application/json' }
    try {
      const t = await (await fetch(`${broker.url}/v1/apps/${appid}/access-token`, { headers, signal: AbortSignal.timeout(5000) })).json()
      this.sdk.reads++
      const w = await (await fetch(`${this.stack.sim}/cgi-bin/getcallbackip?access_token=${t.access_token}`, { signal: AbortSignal.timeout(5000) })).json()
      if (w.errcode === 40001) {
        this.sdk.rejected40001++
        const r = await fetch(`${broker.url}/v1/apps/${appid}/access-token/invalidate`, { method: 'POST', headers, body: JSON.stringify({ access_token: t.access_token }), signal: AbortSignal.timeout(5000) })
        if (r.ok) this.sdk.invalidations++
      }
    } catch {
      this.sdk.errors++
    }
  }

  journey () {
    const x = Math.random()
    if (x < 0.35) return this.newUser(false)
    if (x < 0.45) return this.newUser(true)
    if (x < 0.75) return this.returning()
    if (x < 0.85) return this.bindPhone()
    return this.gateway()
  }

  /** Starts journeys at `rate` a second until stopped, and the SDK caller once a second. */
  start () {
    this.running = true
    const launch = p => {
      const tracked = p.catch(err => { this.crashes = [...(this.crashes ?? []), String(err)] }).finally(() => this.inflight.delete(tracked))
      this.inflight.add(tracked)
    }
    const tick = 1000 / this.rate
    let next = Date.now()
    const loop = async () => {
      while (this.running) {
        launch(this.journey())
        next += tick
        await sleep(Math.max(0, next - Date.now()))
      }
    }
    this.loops = [loop(), (async () => { while (this.running) { launch(this.sdkCall()); await sleep(1000) } })()]
  }

  async stop () {
    this.running = false
    await Promise.all(this.loops)
    await Promise.all([...this.inflight])
  }

  /** After the run: every session answered 200 must still open the gateway route; the ones that do not. */
  async checkSessions () {
    const dead = []
    const queue = [...this.sessions]
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let s = queue.pop(); s !== undefined; s = queue.pop()) {
        const r = await send(`${this.stack.logins[0].url}/api/user/session`, { method: 'GET', token: s.token })
        if (r.status !== 200) dead.push({ ...s, status: r.status })
      }
    }))
    return dead
  }
}
