import t from 'tap'
import { randomBytes } from 'node:crypto'
import { APPID, BROKER, build, useNock } from './helper.js'

// A seeded generator, so a failure can be replayed: the seed is in the test name.
function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6D2B79F5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 100000)

t.test(`fuzz: random bodies and headers give 4xx JSON, never a 5xx (seed ${SEED})`, async t => {
  const nock = useNock(t)
  nock(BROKER).post(`/v1/apps/${APPID}/code2session`).times(Infinity).reply(400, { error: 'invalid_code', message: 'x', wechat_errcode: 40029 })
  const { app } = await build(t)
  const r = rng(SEED)
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T
  const str = (max: number): string => Array.from({ length: Math.floor(r() * max) }, () => String.fromCharCode(Math.floor(r() * 0x2fff))).join('')
  const value = (depth: number): unknown => {
    switch (Math.floor(r() * 8)) {
      case 0: return null
      case 1: return r() * 1e6
      case 2: return r() > 0.5
      case 3: return str(200)
      case 4: return depth > 2 ? 'x' : Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1))
      case 5: return depth > 2 ? {} : Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(['code', 'phoneCode', 'nickname', 'head_pic', '__proto__', 'constructor', str(8)]), value(depth + 1)]))
      case 6: return 'a'.repeat(Math.floor(r() * 300))
      default: return randomBytes(Math.floor(r() * 64)).toString('base64')
    }
  }
  const bodies = (): string | Buffer => {
    switch (Math.floor(r() * 5)) {
      case 0: return JSON.stringify(value(0))
      case 1: return JSON.stringify({ code: value(1), phoneCode: value(1), nickname: value(1), head_pic: value(1) })
      case 2: return randomBytes(Math.floor(r() * 2048))
      case 3: return `code=${encodeURIComponent(str(50))}&phoneCode=${str(20)}&${str(10)}=${str(10)}`
      default: return JSON.stringify(value(0)).slice(0, Math.floor(r() * 50))
    }
  }
  const contentTypes = ['application/json', 'application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '', 'application/json\u0000', 'image/png']
  const urls = ['/api/user/thirdLogin', '/api/user/phone', '/api/user/me', '/api/user/logout', '/api/user/thirdLogin?x=1', '/api/../api/user/thirdLogin', '/api/user/%ff']
  for (let i = 0; i < 400; i++) {
    const headers: Record<string, string> = {}
    const ct = pick(contentTypes)
    if (ct !== '') headers['content-type'] = ct
    if (r() > 0.6) headers.authorization = pick(['Bearer ', 'Bearer x', `Bearer ${randomBytes(32).toString('base64url')}`, 'Basic abc', str(40)])
    if (r() > 0.8) headers['x-forwarded-for'] = str(30)
    const method = pick(['POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE'] as const)
    let res
    try {
      res = await app.inject({ method, url: pick(urls), headers, payload: method === 'GET' ? undefined : bodies() })
    } catch (err) {
      // light-my-request refuses some header values before the app sees them (as Node's http would).
      t.match((err as Error).message, /header|character/i, `case ${i}: only header validation may throw`)
      continue
    }
    if (res.statusCode < 400 || res.statusCode >= 500) {
      t.fail(`case ${i}: status ${res.statusCode} ${res.body.slice(0, 200)}`)
      continue
    }
    const body = res.json()
    if (typeof body.error !== 'string' || typeof body.message !== 'string') t.fail(`case ${i}: not the error shape: ${res.body.slice(0, 200)}`)
  }
  t.equal((await app.inject('/healthz')).statusCode, 200, 'still up')
})
