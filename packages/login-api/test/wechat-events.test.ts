// WeChat's pushes honoured: the simulator pushes as WeChat does (signed and encrypted with
// @wecom/crypto, resent while not answered success) to the broker's push listener; the login-api
// receives them from the broker and applies them to the user record, in every store.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { metricValue, waitFor } from '@wxlogin/testing'
import { CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { build, login, testConfig } from './helper.js'
import { PUSH_AES_KEY, PUSH_TOKEN, stack, type Stack } from './stack.js'
import { databaseConfig, DIALECTS } from './sql.js'

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

async function push (s: Stack, appid: string, message: Record<string, string | number>, mode: 'safe' | 'plain' = 'safe'): Promise<void> {
  const res = await s.sim.app.inject({
    method: 'POST',
    url: `${CONTROL_PREFIX}/push`,
    payload: { url: `${s.pushUrl as string}/${appid}`, appid, token: PUSH_TOKEN, aesKey: PUSH_AES_KEY, mode, format: 'xml', message, resends: 3, resendAfterMs: 200 }
  })
  if (res.json().answered !== 'success') throw new Error(`the push was not taken: ${res.body}`)
}

const revoke = (appid: string, openid: string, info: string, at = Math.floor(Date.now() / 1000)): Record<string, string | number> =>
  ({ ToUserName: 'gh_test', FromUserName: 'o_push_service', CreateTime: at, MsgType: 'event', Event: 'user_authorization_revoke', OpenID: openid, AppID: appid, RevokeInfo: info })

async function streamTypes (url: string): Promise<string[][]> {
  const c = createClient({ url })
  c.on('error', () => {})
  await c.connect()
  try {
    const entries = await c.xRange('wxlogin:events', '-', '+')
    return entries.map(e => [e.message.type as string, e.message.openid as string, e.message.reason ?? ''])
  } finally {
    await c.quit()
  }
}

const stores = [{ name: 'Redis', start: undefined }, ...DIALECTS]
for (const store of stores) {
  t.test(`${store.name}: a phone withdrawal, a profile withdrawal and a cancellation reach the user record within seconds`, async t => {
    const server = store.start === undefined ? undefined : await store.start(t)
    const s = await stack(t, 1, { push: true, login: { wechatEventsReceive: true, ...(server === undefined ? {} : { database: databaseConfig(server) }) } })
    const app = s.apps[0] as FastifyInstance
    const appid = app.loginConfig.apps[0] as string
    const first = await login(app, { ...await s.mint('o-withdraws', { phoneNumber: '13511112222' }), nickname: 'Nick', head_pic: 'https://img.example/a.png' })
    t.equal(first.statusCode, 200)
    const token = first.json().token as string
    const me = async (): Promise<any> => (await app.inject({ url: '/api/user/me', headers: auth(token) })).json()
    t.equal((await me()).phone.purePhoneNumber, '13511112222')

    await push(s, appid, revoke(appid, 'o-withdraws', '8'))
    await waitFor(async () => (await me()).phone === null, { what: 'the phone removed' })
    const after = await me()
    t.equal(after.phone_verified_at, null)
    t.equal(after.nickname, 'Nick', 'only the phone')
    if (server === undefined) {
      const c = createClient({ url: s.redis.url })
      c.on('error', () => {})
      await c.connect()
      const raw = await c.get(`wxlogin:user:${after.user_id as string}`) ?? ''
      await c.quit()
      t.notMatch(raw, /13511112222|pii1:/, 'nothing of the phone left in the record, sealed or not')
    }

    await push(s, appid, revoke(appid, 'o-withdraws', '6'), 'plain')
    await waitFor(async () => (await me()).nickname === null, { what: 'the profile removed' })
    t.equal((await me()).head_pic, null)

    await push(s, appid, { ToUserName: 'gh_test', FromUserName: 'o_push_service', CreateTime: Math.floor(Date.now() / 1000), MsgType: 'event', Event: 'user_authorization_cancellation', OpenID: 'o-withdraws', AppID: appid })
    await waitFor(async () => (await app.inject({ url: '/api/user/me', headers: auth(token) })).statusCode === 401, { what: 'the account deleted' })
    t.equal(await app.users.userIdOf({ appid, openid: 'o-withdraws' }), null, 'no user left')
    const types = await streamTypes(s.redis.url)
    t.same(types.filter(e => e[1] === 'o-withdraws').map(e => e[0] === 'user.deleted' ? `${e[0]}:${e[2]}` : e[0]).slice(-3), ['user.phone_revoked', 'user.profile_revoked', 'user.deleted:wechat_cancellation'])
    t.equal(await metricValue(app, 'login_wechat_events_total', { event: 'user_authorization_revoke', result: 'applied' }), 2)

    await push(s, appid, revoke(appid, 'o-stranger', '8'))
    await waitFor(async () => (await metricValue(app, 'login_wechat_events_total', { event: 'user_authorization_revoke', result: 'unknown_user' })) === 1, { what: 'an unknown user acknowledged and counted' })
    t.ok(await metricValue(app, 'login_wechat_events_lag_seconds') >= 0)
  })
}

t.test('the login-api stopped while a withdrawal arrives: applied when it is back; two instances apply each once', async t => {
  const s = await stack(t, 1, { push: true, login: { wechatEventsReceive: true } })
  const a = s.apps[0] as FastifyInstance
  const appid = a.loginConfig.apps[0] as string
  const users = ['o-away-1', 'o-away-2', 'o-away-3']
  for (const openid of users) t.equal((await login(a, { ...await s.mint(openid) })).statusCode, 200)
  const config = a.loginConfig
  await a.close()
  for (const openid of users) await push(s, appid, revoke(appid, openid, '8'))
  // Back: two instances now, sharing the work.
  const b = (await build(t, testConfig(config))).app
  const c = (await build(t, testConfig(config))).app
  await Promise.all([b.ready(), c.ready()])
  await waitFor(async () => {
    const applied = await metricValue(b, 'login_wechat_events_total', { event: 'user_authorization_revoke', result: 'applied' }) +
      await metricValue(c, 'login_wechat_events_total', { event: 'user_authorization_revoke', result: 'applied' })
    return applied === 3
  }, { what: 'the withdrawals applied', timeoutMs: 20_000 })
  for (const openid of users) {
    const userId = await b.users.userIdOf({ appid, openid }) as string
    t.equal((await b.users.getUser(userId))?.phone, null, `${openid}: phone removed`)
  }
  const revoked = (await streamTypes(s.redis.url)).filter(e => e[0] === 'user.phone_revoked')
  t.equal(revoked.length, 3, 'each withdrawal applied once')
})
