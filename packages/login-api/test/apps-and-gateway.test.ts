import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { login } from './helper.js'
import { stack } from './stack.js'

const SHOP = 'wxshopapp00000001'
const CLUB = 'wxclubapp00000002'
const OTHER = 'wxnotservedapp003'
const referer = (appid: string): Record<string, string> => ({ referer: `https://servicewechat.com/${appid}/12/page-frame.html` })

t.test('several mini-programs: the app from the body or WeChat\'s Referer; one user_id per unionid', async t => {
  const { apps, mint } = await stack(t, 2, { appids: [SHOP, CLUB] })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const inShop = await login(a, { ...await mint('o-shop', { appid: SHOP, unionid: 'u-alice' }), appid: SHOP, nickname: 'Alice' })
  t.equal(inShop.statusCode, 200)
  t.match(inShop.json(), { is_new_user: true, user: { appid: SHOP, openid: 'o-shop', unionid: 'u-alice', nickname: 'Alice' } })
  // The other app, on the other instance, named by the Referer WeChat sets.
  const inClub = await login(b, { ...await mint('o-club', { appid: CLUB, unionid: 'u-alice', phoneNumber: '13900139000' }) }, referer(CLUB))
  t.equal(inClub.statusCode, 200)
  t.match(inClub.json(), { is_new_user: false, user: { appid: CLUB, openid: 'o-club', unionid: 'u-alice', nickname: 'Alice', phone: { purePhoneNumber: '13900139000' } } })
  t.equal(inClub.json().user.user_id, inShop.json().user.user_id, 'the same person across apps: one user_id')
  const user = await a.users.getUser(inShop.json().user.user_id as string)
  t.same(user?.identities, [{ appid: SHOP, openid: 'o-shop' }, { appid: CLUB, openid: 'o-club' }])

  // No unionid (the app is not bound to an Open Platform account): a user per app identity.
  const lone = await login(a, { ...await mint('o-lone', { appid: CLUB, unionid: null }) }, referer(CLUB))
  t.equal(lone.json().user.unionid, null)
  t.not(lone.json().user.user_id, inShop.json().user.user_id)

  const refusals: Array<[object, Record<string, string>]> = [
    [{ code: 'c1', appid: OTHER }, {}],
    [{ code: 'c2' }, referer(OTHER)],
    [{ code: 'c3' }, {}]
  ]
  for (const [body, headers] of refusals) {
    const r = await login(a, body, headers)
    t.equal(r.statusCode, 400)
    t.equal(r.json().error, 'unknown_app', JSON.stringify({ body, headers }))
  }
  t.equal((await login(a, { code: 'c4', appid: 'not an appid' })).json().error, 'invalid_body')
})

t.test('the gateway route: 200 with the user\'s headers for a live session, 401 otherwise; not IP-limited', async t => {
  const { apps, mint } = await stack(t, 2, { login: { ipRateLimitMax: 3 } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const session = await login(a, { ...await mint('gw-user') })
  const token = session.json().token as string
  for (let i = 0; i < 10; i++) {
    const r = await b.inject({ url: '/api/user/session', headers: { authorization: `Bearer ${token}` } })
    t.equal(r.statusCode, 200, `check ${i + 1}: a gateway sends every user's requests from one address`)
    if (i > 0) continue
    t.equal(r.headers['x-user-id'], session.json().user.user_id)
    t.equal(r.headers['x-user-openid'], 'gw-user')
    t.equal(r.headers['x-user-appid'], session.json().user.appid)
    t.same(r.json(), { user_id: session.json().user.user_id, appid: session.json().user.appid, openid: 'gw-user' })
    t.equal(r.headers['cache-control'], 'no-store')
  }
  for (const authorization of [undefined, 'Bearer nope-not-a-session-token-at-all', 'Basic x']) {
    const r = await b.inject({ url: '/api/user/session', headers: authorization === undefined ? {} : { authorization } })
    t.equal(r.statusCode, 401)
    t.equal(r.headers['x-user-id'], undefined)
  }
})

t.test('logout everywhere ends every session of the user, in every app; a plain logout ends one', async t => {
  const { apps, mint } = await stack(t, 2, { appids: [SHOP, CLUB] })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const tokens: string[] = []
  for (const [appid, openid] of [[SHOP, 'o-1'], [SHOP, 'o-1'], [CLUB, 'o-2']] as const) {
    tokens.push((await login(a, { ...await mint(openid, { appid, unionid: 'u-bob' }), appid })).json().token)
  }
  const other = (await login(a, { ...await mint('o-carol', { appid: SHOP, unionid: 'u-carol' }), appid: SHOP })).json().token as string
  const alive = async (token: string): Promise<boolean> => (await b.inject({ url: '/api/user/session', headers: { authorization: `Bearer ${token}` } })).statusCode === 200
  t.equal((await b.inject({ method: 'POST', url: '/api/user/logout', headers: { authorization: `Bearer ${tokens[0] as string}` } })).statusCode, 204)
  t.same(await Promise.all(tokens.map(alive)), [false, true, true], 'a plain logout ends that session only')
  const all = await b.inject({ method: 'POST', url: '/api/user/logout?all=true', headers: { authorization: `Bearer ${tokens[2] as string}` } })
  t.equal(all.statusCode, 204)
  t.same(await Promise.all(tokens.map(alive)), [false, false, false], 'logout?all=true ends the rest, in both apps')
  t.equal(await alive(other), true, 'another user is untouched')
  t.equal((await b.inject({ method: 'POST', url: '/api/user/logout?all=yes', headers: { authorization: `Bearer ${other}` } })).statusCode, 400)
})

t.test('login events on a Redis Stream, read by a consumer group at least once; phone masked by default', async t => {
  for (const includePhone of [false, true]) {
    t.test(`EVENTS_INCLUDE_PHONE=${String(includePhone)}`, async t => {
      const { apps, mint, redis } = await stack(t, 2, { login: { eventsIncludePhone: includePhone } })
      const [a, b] = apps as [FastifyInstance, FastifyInstance]
      const consumer = createClient({ url: redis.url })
      consumer.on('error', () => {})
      await consumer.connect()
      t.teardown(async () => { await consumer.close() })
      await consumer.xGroupCreate('wxlogin:events', 'crm', '0', { MKSTREAM: true })

      const first = await login(a, { ...await mint('ev-user', { unionid: 'u-ev' }), nickname: 'Eve' })
      await login(b, { code: (await mint('ev-user', { unionid: 'u-ev' })).code })
      const session = first.json().token as string
      const newPhone = await mint('ev-user', { unionid: 'u-ev', phoneNumber: '13700137000' })
      t.equal((await b.inject({ method: 'POST', url: '/api/user/phone', headers: { authorization: `Bearer ${session}` }, payload: { phoneCode: newPhone.phoneCode } })).statusCode, 200)

      const read = await consumer.xReadGroup('crm', 'worker-1', { key: 'wxlogin:events', id: '>' }, { COUNT: 100 }) as Array<{ messages: Array<{ id: string, message: Record<string, string> }> }> | null
      const messages = read?.[0]?.messages ?? []
      t.same(messages.map(m => m.message.type), ['user.created', 'user.logged_in', 'user.phone_changed', 'user.logged_in', 'user.phone_changed'])
      const userId = first.json().user.user_id as string
      t.ok(messages.every(m => m.message.user_id === userId && m.message.openid === 'ev-user' && m.message.unionid === 'u-ev'))
      const phones = messages.map(m => m.message.phone).filter(p => p !== '')
      if (includePhone) t.same([...new Set(phones)], ['13800138000', '13700137000'], 'full numbers when asked for')
      else {
        t.same([...new Set(phones)], ['138****8000', '137****7000'], 'masked by default')
        t.notOk(JSON.stringify(messages).includes('13800138000'))
      }
      // Until acknowledged, a message is redelivered to the group: at least once.
      const pending = await consumer.xPending('wxlogin:events', 'crm')
      t.equal(Number(pending.pending), messages.length)
      await consumer.xAck('wxlogin:events', 'crm', messages.map(m => m.id))
      t.equal(Number((await consumer.xPending('wxlogin:events', 'crm')).pending), 0)
    })
  }
})

t.test('the stream is capped near LOGIN_EVENTS_MAXLEN', async t => {
  const { apps, redis } = await stack(t, 1, { login: { eventsMaxLen: 100 } })
  const app = apps[0] as FastifyInstance
  const now = new Date().toISOString()
  const user = { user_id: 'cap', unionid: null, nickname: null, head_pic: null, phone: null, phone_verified_at: null, identities: [], created_at: now, updated_at: now }
  for (let i = 0; i < 1000; i++) await app.events.emit([{ type: 'user.logged_in', user, appid: 'wx', openid: 'cap' }])
  const client = createClient({ url: redis.url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(async () => { await client.close() })
  const length = await client.xLen('wxlogin:events')
  t.ok(length >= 100 && length < 300, `${length} entries after 1,000 (MAXLEN ~ trims whole blocks)`)
})
