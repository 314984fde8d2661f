import t, { type Test } from 'tap'
import { Registry } from 'prom-client'
import { createUpstream, createWechatApiMetrics, ServiceError } from '@wxlogin/service-kit'
import { WechatClient } from '../src/wechat/wechat-client.js'
import type { WechatAppConfig } from '../src/config.js'
import { APPID, SECRET, WX, tokenReply, useNock } from './helper.js'

// nock 14 needs real Error objects here; a plain object leaves the request hanging (nock#2789).
const netError = (code: string): Error => Object.assign(new Error(code), { code })

const stableApp: WechatAppConfig = { appid: APPID, secret: SECRET, tokenMode: 'stable' }
const classicApp: WechatAppConfig = { appid: APPID, secret: SECRET, tokenMode: 'classic' }

function client (over: Partial<ConstructorParameters<typeof WechatClient>[0]> = {}): { wc: WechatClient, registry: Registry } {
  const registry = new Registry()
  const wc = new WechatClient({
    upstream: createUpstream(),
    metrics: createWechatApiMetrics(registry),
    baseUrl: WX,
    timeoutMs: 300,
    retryBudgetMs: 2000,
    backoffBaseMs: 1,
    ...over
  })
  return { wc, registry }
}

async function counts (registry: Registry): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric('wechat_api_requests_total')?.get()
  const out: Record<string, number> = {}
  for (const v of m?.values ?? []) out[`${v.labels.api}:${v.labels.result}`] = v.value
  return out
}

function expectServiceError (t: Test, err: unknown, code: string, status: number, errcode?: number): void {
  t.ok(err instanceof ServiceError, 'a ServiceError')
  const e = err as ServiceError
  t.equal(e.code, code)
  t.equal(e.statusCode, status)
  t.equal(e.wechatErrcode, errcode)
  t.notMatch(e.message, SECRET, 'no secret in the message')
}

t.test('stable mode: normal-mode POST with the secret in the body', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid: APPID, secret: SECRET, force_refresh: false }).reply(200, tokenReply('tok-1'))
  const { wc, registry } = client()
  t.same(await wc.fetchToken(stableApp, false), { token: 'tok-1', expiresInSeconds: 7200 })
  t.ok(scope.isDone())
  t.same(await counts(registry), { 'stable_token:ok': 1 })
})

t.test('stable mode: force_refresh true when forced', async t => {
  const nock = useNock(t)
  const scope = nock(WX).post('/cgi-bin/stable_token', (b: Record<string, unknown>) => b.force_refresh === true).reply(200, tokenReply('tok-2'))
  const { wc } = client()
  t.equal((await wc.fetchToken(stableApp, true)).token, 'tok-2')
  t.ok(scope.isDone())
})

t.test('classic mode: GET /cgi-bin/token with query parameters', async t => {
  const nock = useNock(t)
  const scope = nock(WX).get('/cgi-bin/token').query({ grant_type: 'client_credential', appid: APPID, secret: SECRET }).reply(200, tokenReply('tok-c', 7200))
  const { wc, registry } = client()
  t.equal((await wc.fetchToken(classicApp, false)).token, 'tok-c')
  t.ok(scope.isDone())
  t.same(await counts(registry), { 'token:ok': 1 })
})

for (const mode of ['stable', 'classic'] as const) {
  const app = mode === 'stable' ? stableApp : classicApp
  const api = mode === 'stable' ? 'stable_token' : 'token'
  const route = (nock: ReturnType<typeof useNock>): ReturnType<ReturnType<typeof nock>['post']> =>
    mode === 'stable' ? nock(WX).post('/cgi-bin/stable_token') : nock(WX).get('/cgi-bin/token').query(true)

  for (const errcode of [40001, 40013, 40125, 40164, 40002, 45009]) {
    t.test(`${mode}: errcode ${errcode} is not retried`, async t => {
      const nock = useNock(t)
      const scope = route(nock).once().reply(200, { errcode, errmsg: 'x' })
      const { wc, registry } = client()
      const err = await wc.fetchToken(app, false).catch((e: unknown) => e)
      expectServiceError(t, err, 'wechat_error', 502, errcode)
      t.ok(scope.isDone())
      t.same(await counts(registry), { [`${api}:${errcode}`]: 1 }, 'exactly one call')
    })
  }

  t.test(`${mode}: -1, 5xx, resets and timeouts are retried, then succeed`, async t => {
    const nock = useNock(t)
    route(nock).reply(200, { errcode: -1, errmsg: 'system error' })
    route(nock).reply(502, 'bad gateway')
    route(nock).replyWithError(netError('ECONNRESET'))
    route(nock).reply(200, tokenReply('tok-after-retries'))
    const { wc, registry } = client({ maxAttempts: 5 })
    t.equal((await wc.fetchToken(app, false)).token, 'tok-after-retries')
    t.same(await counts(registry), { [`${api}:-1`]: 1, [`${api}:http_502`]: 1, [`${api}:network_error`]: 1, [`${api}:ok`]: 1 })
  })

  t.test(`${mode}: a timeout is retried`, async t => {
    const nock = useNock(t)
    route(nock).delay(500).reply(200, tokenReply('too-late'))
    route(nock).reply(200, tokenReply('in-time'))
    const { wc, registry } = client({ timeoutMs: 100 })
    t.equal((await wc.fetchToken(app, false)).token, 'in-time')
    t.same(await counts(registry), { [`${api}:timeout`]: 1, [`${api}:ok`]: 1 })
  })

  t.test(`${mode}: retries stop at maxAttempts`, async t => {
    const nock = useNock(t)
    route(nock).times(10).reply(200, { errcode: -1, errmsg: 'system error' })
    const { wc, registry } = client({ maxAttempts: 3 })
    const err = await wc.fetchToken(app, false).catch((e: unknown) => e)
    expectServiceError(t, err, 'upstream_unavailable', 503, -1)
    t.same(await counts(registry), { [`${api}:-1`]: 3 })
  })

  t.test(`${mode}: retries stop when the time budget is spent`, async t => {
    const nock = useNock(t)
    route(nock).times(10).reply(500, 'oops')
    // The first pause (>= 75 ms) would already pass the 50 ms budget.
    const { wc, registry } = client({ maxAttempts: 10, backoffBaseMs: 100, retryBudgetMs: 50 })
    const err = await wc.fetchToken(app, false).catch((e: unknown) => e)
    expectServiceError(t, err, 'upstream_unavailable', 503)
    t.same(await counts(registry), { [`${api}:http_500`]: 1 })
  })

  t.test(`${mode}: an answer without a token is an error`, async t => {
    const nock = useNock(t)
    route(nock).reply(200, { expires_in: 7200 })
    const { wc } = client()
    expectServiceError(t, await wc.fetchToken(app, false).catch((e: unknown) => e), 'upstream_unavailable', 503)
  })
}

t.test('code2session: success with and without unionid; session_key never returned', async t => {
  const nock = useNock(t)
  nock(WX).get('/sns/jscode2session').query({ appid: APPID, secret: SECRET, js_code: 'c1', grant_type: 'authorization_code' })
    .reply(200, { openid: 'o1', session_key: 'sk', unionid: 'u1' })
  nock(WX).get('/sns/jscode2session').query(true).reply(200, { openid: 'o2', session_key: 'sk', errcode: 0 })
  const { wc } = client()
  t.same(await wc.code2session(stableApp, 'c1'), { openid: 'o1', unionid: 'u1' })
  t.same(await wc.code2session(stableApp, 'c2'), { openid: 'o2', unionid: null })
})

const c2sCases: Array<[number, string, number]> = [
  [40029, 'invalid_code', 400],
  [40163, 'invalid_code', 400],
  [45011, 'rate_limited', 429],
  [40226, 'high_risk_user', 403],
  [-1, 'upstream_unavailable', 503],
  [40125, 'wechat_error', 502]
]
for (const [errcode, code, status] of c2sCases) {
  t.test(`code2session: errcode ${errcode} -> ${status} ${code}, not retried`, async t => {
    const nock = useNock(t)
    const scope = nock(WX).get('/sns/jscode2session').query(true).once().reply(200, { errcode, errmsg: 'x' })
    const { wc, registry } = client()
    expectServiceError(t, await wc.code2session(stableApp, 'c').catch((e: unknown) => e), code, status, errcode)
    t.ok(scope.isDone())
    t.same(await counts(registry), { [`jscode2session:${errcode}`]: 1 })
  })
}

t.test('code2session: a reset after sending is not retried (the code may be spent)', async t => {
  const nock = useNock(t)
  nock(WX).get('/sns/jscode2session').query(true).once().replyWithError(netError('ECONNRESET'))
  const { wc, registry } = client()
  expectServiceError(t, await wc.code2session(stableApp, 'c').catch((e: unknown) => e), 'upstream_unavailable', 503)
  t.same(await counts(registry), { 'jscode2session:network_error': 1 })
})

t.test('code2session: connection refused is retried (nothing reached WeChat)', async t => {
  const nock = useNock(t)
  nock(WX).get('/sns/jscode2session').query(true).replyWithError(netError('ECONNREFUSED'))
  nock(WX).get('/sns/jscode2session').query(true).reply(200, { openid: 'o3', session_key: 'sk' })
  const { wc } = client()
  t.same(await wc.code2session(stableApp, 'c'), { openid: 'o3', unionid: null })
})

t.test('an unreachable WeChat gives a clean error without the URL or secret', async t => {
  // A closed local port: a real connection refusal, no nock.
  const { wc } = client({ baseUrl: 'http://127.0.0.1:1', maxAttempts: 2 })
  const err = await wc.fetchToken(classicApp, false).catch((e: unknown) => e) as ServiceError
  expectServiceError(t, err, 'upstream_unavailable', 503)
  t.notMatch(JSON.stringify(err.toJSON()), /secret|127\.0\.0\.1/)
  t.equal(err.stack?.includes(SECRET), false)
})
