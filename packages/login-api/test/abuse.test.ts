import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { limitAddress } from '@wxlogin/service-kit'
import { metricValue } from '@wxlogin/testing'
import { login } from './helper.js'
import { stack } from './stack.js'

// Abuse that costs WeChat quota or money, or piles up state: bounded per network, per app, per user.

t.test('IPv6 clients are limited by their /64: new addresses of one subscriber do not pass the limit', async t => {
  const { apps } = await stack(t, 1, { login: { ipRateLimitMax: 5 } })
  const app = apps[0] as FastifyInstance
  const from = async (remoteAddress: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/api/user/thirdLogin', payload: {}, remoteAddress })).statusCode
  const codes = []
  for (let i = 1; i <= 12; i++) codes.push(await from(`2001:db8:aa:bb::${i.toString(16)}`))
  t.equal(codes.filter(c => c === 429).length, 7, '12 addresses of one /64, a limit of 5: 7 refused')
  t.equal(await from('2001:db8:aa:cc::1'), 400, 'another /64 is another client')
  t.equal(limitAddress('::ffff:192.0.2.1', 64), '192.0.2.1', 'an IPv4-mapped address counts as its IPv4 address')
  t.equal(limitAddress('2001:db8:aa:bb:1:2:3:4', 56), '2001:db8:aa:0:0:0:0:0/56', 'IP_RATE_LIMIT_IPV6_PREFIX sets the network')
})

t.test('a spray of forged codes: past the app\'s budget, failing IPs are shed before WeChat, cluster-wide; honest users still log in', async t => {
  const { apps, sim, mint } = await stack(t, 2, { login: { codeFailures: { budget: 4, windowSeconds: 60, perIp: 2 } } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const spray = async (app: FastifyInstance, i: number, remoteAddress: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/api/user/thirdLogin', payload: { code: `forged-${remoteAddress}-${i}` }, remoteAddress })).statusCode
  const answers = []
  for (let i = 0; i < 30; i++) answers.push(await spray(i % 2 === 0 ? a : b, i, '198.51.100.7'))
  const upstream = sim.state.calls.jscode2session
  t.ok(upstream <= 6, `${upstream} of 30 forged codes reached WeChat (budget 4, then this IP is shed)`)
  t.equal(answers.filter(s => s === 429).length, 30 - upstream, 'the rest were 429 before WeChat')
  t.ok(await metricValue(a, 'login_code_failures_shed_total', { appid: 'wxlogintest000001' }) + await metricValue(b, 'login_code_failures_shed_total', { appid: 'wxlogintest000001' }) > 0)
  // A client that has not failed is served while the app is over its budget; one failure marks nobody.
  const honest = await login(b, { ...await mint('honest') }, {})
  t.equal(honest.statusCode, 200, 'an honest user from another address')
  t.equal(await spray(a, 99, '203.0.113.50'), 400, 'a first mistake from elsewhere still reaches WeChat')
})

t.test('sessions per user are capped: a new login ends the oldest beyond SESSIONS_PER_USER_MAX', async t => {
  const { apps, mint } = await stack(t, 2, { login: { sessionsPerUserMax: 3 } })
  const tokens: string[] = []
  for (let i = 0; i < 5; i++) tokens.push((await login(apps[i % 2] as FastifyInstance, { ...await mint('busy-user') })).json().token as string)
  const live = []
  for (const token of tokens) live.push((await (apps[0] as FastifyInstance).inject({ url: '/api/user/me', headers: { authorization: `Bearer ${token}` } })).statusCode)
  t.same(live, [401, 401, 200, 200, 200], 'the two oldest ended, the newest three live')
  const out = await (apps[1] as FastifyInstance).inject({ method: 'POST', url: '/api/user/logout?all=true', headers: { authorization: `Bearer ${tokens[4] as string}` } })
  t.equal(out.statusCode, 204)
  for (const token of tokens.slice(2)) {
    t.equal((await (apps[0] as FastifyInstance).inject({ url: '/api/user/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'logout everywhere still finds every session')
  }
})

t.test('nicknames: NFC-normalised; invisible and format characters refused before anything is spent', async t => {
  const { apps, sim, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  const refused: Array<[string, string]> = [
    ['ad\u00adm\u00adin', 'soft hyphens'],
    ['admin\u200b', 'a zero-width space'],
    ['ad\u2060min', 'a word joiner'],
    ['admin\u{E0041}\u{E0042}', 'tag characters'],
    ['a\uFDD0b', 'a noncharacter'],
    ['a\uFFFEb', 'a noncharacter (U+FFFE)'],
    ['\u3164', 'a Hangul filler that shows as nothing'],
    ['a\uE000b', 'private use'],
    ['abc\u202Egnp.exe', 'a bidi override'],
    ['a\u0007b', 'a control character']
  ]
  for (const [nickname, what] of refused) {
    const res = await login(app, { code: 'never-used', nickname })
    t.equal(res.statusCode, 400, `refused: ${what}`)
    t.equal(res.json().error, 'invalid_body')
  }
  t.equal(sim.state.calls.jscode2session, 0, 'none reached WeChat')
  const accepted: Array<[string, string, string]> = [
    ['张三', '张三', 'Chinese'],
    ['Ame\u0301lie', 'Am\u00e9lie', 'a combining accent, stored composed (NFC)'],
    ['👨\u200d👩\u200d👧', '👨\u200d👩\u200d👧', 'an emoji family (zero-width joiners)'],
    ['❤\uFE0F', '❤\uFE0F', 'an emoji variation selector']
  ]
  for (const [nickname, stored, what] of accepted) {
    const res = await login(app, { ...await mint(`nick-${what.length}`), nickname })
    t.equal(res.statusCode, 200, `accepted: ${what}`)
    t.equal(res.json().user.nickname, stored)
  }
})
