import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient } from 'redis'
import { RedisTokenStore } from '../src/store/token-store.js'
import { BrokerKeys } from '../src/keys.js'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { APPID, CLIENT_TOKEN, OTHER_CLIENT_TOKEN, SECRET, auth, metricValue } from './helper.js'
import { handleAndClient, TOKEN_URL, startSim, replicas, getToken, invalidate } from './replica-helpers.js'

t.test('500 concurrent cold requests over 3 replicas: exactly one upstream call', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { latencyMs: 50 })
  const apps = await replicas(t, 3, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url })
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => await getToken(apps[i % 3] as FastifyInstance)))
  t.equal(sim.state.calls.stable_token, 1, 'one upstream token call cluster-wide')
  t.ok(results.every(r => r.status === 200), 'all 500 served')
  t.equal(new Set(results.map(r => r.token)).size, 1, 'all got the same token')
  let upstream = 0
  for (const app of apps) upstream += await metricValue(app, 'token_broker_refreshes_total', { result: 'ok' })
  t.equal(upstream, 1)
  let waited = 0
  for (const app of apps) waited += await metricValue(app, 'token_broker_lock_wait_seconds_count')
  t.ok(waited >= 1, 'lock waits were measured')
})

t.test('200 concurrent invalidations of one stale token over 3 replicas: one upstream call', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { latencyMs: 30 })
  const apps = await replicas(t, 3, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url })
  const stale = (await getToken(apps[0] as FastifyInstance)).token
  for (const app of apps) t.equal((await getToken(app)).token, stale, 'every replica holds the stale token')
  const before = sim.state.calls.stable_token
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => await invalidate(apps[i % 3] as FastifyInstance, stale)))
  t.equal(sim.state.calls.stable_token - before, 1, 'one (forced) upstream call')
  t.ok(results.every(r => r.status === 200))
  const fresh = new Set(results.map(r => r.token))
  t.equal(fresh.size, 1, 'everyone got the same new token')
  t.notOk(fresh.has(stale))
  const [current] = [...fresh]

  const late = await invalidate(apps[2] as FastifyInstance, stale)
  t.equal(late.token, current, 'an old token gets the current one back')
  t.equal(sim.state.calls.stable_token - before, 1, 'without an upstream call')
  for (const app of apps) {
    await waitFor(async () => (await getToken(app)).token === current, { what: 'replica adopts the new token (pub/sub)' })
  }
})

t.test('forced refreshes are spaced out cluster-wide', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a, b] = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, forceRefreshIntervalMs: 60_000 }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  const second = await invalidate(a, first.token)
  t.equal(second.status, 200)
  const callsAfterForce = sim.state.calls.stable_token
  const third = await invalidate(b, second.token)
  t.equal(third.status, 429, 'another replica may not force again within the interval')
  t.equal(sim.state.calls.stable_token, callsAfterForce, 'and WeChat was not called')
})

t.test('the token store never lets an older refresh overwrite a newer token', async t => {
  const redis = await startRedisServer(t)
  const { handle, client } = await handleAndClient(t, redis.connection)
  const store = new RedisTokenStore(handle, new BrokerKeys('test:'), [APPID])
  const older = await store.nextSeq(APPID)
  const newer = await store.nextSeq(APPID)
  t.ok(newer > older, 'sequence increases')
  t.ok(older >= Date.now() - 5000, 'and is never behind the clock')
  t.equal(await store.setIfNewer(APPID, { token: 'newer', expiresAt: Date.now() + 60_000, seq: newer }), true)
  t.equal(await store.setIfNewer(APPID, { token: 'older', expiresAt: Date.now() + 90_000, seq: older }), false, 'older refused')
  t.equal((await store.get(APPID))?.token, 'newer')
  const ttl = await client.pTTL(`test:{${APPID}}:token`)
  t.ok(ttl > 0 && ttl <= 60_000, 'the key expires with the token')

  // A record no broker wrote: a far-future expiry and a huge seq, planted to pin every replica.
  await client.set(`test:{${APPID}}:token`, JSON.stringify({ token: 'planted', expiresAt: Date.now() + 10 * 365 * 86_400_000, seq: 1e15 }))
  t.equal(await store.get(APPID), null, 'an implausible record is not served')
  await client.set(`test:{${APPID}}:seq`, '1000000000000000')
  const afterPlant = await store.nextSeq(APPID)
  t.ok(afterPlant < Date.now() + 86_400_000, 'a sequence pushed far ahead starts again from the clock')
  t.equal(await store.setIfNewer(APPID, { token: 'real', expiresAt: Date.now() + 60_000, seq: afterPlant }), true, 'and the planted record does not block the next refresh')
  t.equal((await store.get(APPID))?.token, 'real')
})

t.test('the daily invalidation budget: 100 invalidations of the current token over 2 replicas stay within it', async t => {
  for (const mode of ['stable', 'classic'] as const) {
    t.test(mode, async t => {
      const redis = await startRedisServer(t)
      // WeChat's own 30 s between forced refreshes is lifted: only the broker's budget limits here.
      const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
      const apps = await replicas(t, 2, {
        redis: redis.connection,
        redlock: [redis.connection],
        wechatBaseUrl: sim.url,
        apps: [{ appid: APPID, secret: SECRET, tokenMode: mode }],
        forceRefreshIntervalMs: 0,
        invalidationBudget: { stable: 4, classic: 4 }
      })
      const api = mode === 'stable' ? 'stable_token' : 'token'
      let current = (await getToken(apps[0] as FastifyInstance)).token
      const before = sim.state.calls[api]
      const statuses: Record<number, number> = {}
      for (let i = 0; i < 100; i++) {
        const res = await (apps[i % 2] as FastifyInstance).inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: current } })
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
        if (res.statusCode === 200) current = res.json().access_token
        else t.equal(res.json().error, 'refresh_budget_exhausted')
      }
      t.equal(sim.state.calls[api] - before, 4, 'exactly the budget reached WeChat, across both replicas')
      t.same(statuses, { 200: 4, 429: 96 })
      t.equal(await metricValue(apps[1] as FastifyInstance, 'token_broker_invalidation_budget_limit', { appid: APPID }), 4)
      const used = Math.max(...await Promise.all(apps.map(async a => await metricValue(a, 'token_broker_invalidation_budget_used', { appid: APPID }))))
      t.equal(used, 4, 'the dashboard sees the budget spent')
      t.equal((await getToken(apps[0] as FastifyInstance)).token, current, 'the current token is still served')
    })
  }
})

t.test('clients share an app\'s invalidation budget: one posting valid tokens spends only its own share', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const apps = await replicas(t, 2, {
    redis: redis.connection,
    redlock: [redis.connection],
    wechatBaseUrl: sim.url,
    forceRefreshIntervalMs: 0,
    invalidationBudget: { stable: 4, classic: 4 },
    clients: [
      { name: 'login-api', token: CLIENT_TOKEN, apps: [APPID], admin: false },
      { name: 'other', token: OTHER_CLIENT_TOKEN, apps: ['*'], admin: false }
    ]
  })
  const post = async (i: number, token: string, stale: string): Promise<{ statusCode: number, json: () => any }> =>
    await (apps[i % 2] as FastifyInstance).inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(token), payload: { access_token: stale } })
  let current = (await getToken(apps[0] as FastifyInstance)).token
  const abusive: number[] = []
  for (let i = 0; i < 10; i++) {
    const res = await post(i, OTHER_CLIENT_TOKEN, current)
    abusive.push(res.statusCode)
    if (res.statusCode === 200) current = res.json().access_token
    else t.match(res.json(), { error: 'refresh_budget_exhausted', message: /client other \(its share\)/ })
  }
  t.same(abusive, [200, 200, 429, 429, 429, 429, 429, 429, 429, 429], 'its share: 2 of the 4')
  for (let i = 0; i < 2; i++) {
    const res = await post(i, CLIENT_TOKEN, current)
    t.equal(res.statusCode, 200, 'the other client\'s real 40001 is still answered')
    current = res.json().access_token
  }
  t.equal((await post(0, CLIENT_TOKEN, current)).statusCode, 429, 'and its own share ends too')
})

t.test('classic mode: invalidations are spaced cluster-wide too', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const [a, b] = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, apps: [{ appid: APPID, secret: SECRET, tokenMode: 'classic' }], forceRefreshIntervalMs: 60_000 }) as [FastifyInstance, FastifyInstance]
  const first = await getToken(a)
  const second = await invalidate(a, first.token)
  t.equal(second.status, 200)
  const calls = sim.state.calls.token
  const third = await invalidate(b, second.token)
  t.equal(third.status, 429)
  t.equal(sim.state.calls.token, calls, 'no /cgi-bin/token call: each would spend the daily quota')
})

t.test('a token record planted in Redis (far-future expiry, huge seq) is never served, and is replaced', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const raw = createClient({ url: redis.url })
  raw.on('error', () => {})
  await raw.connect()
  t.teardown(async () => { await raw.quit() })
  const planted = JSON.stringify({ token: 'planted-token', expiresAt: Date.now() + 10 * 365 * 86_400_000, seq: 9e15 })
  await raw.set(`wxbroker:{${APPID}}:token`, planted)
  await raw.set(`wxbroker:{${APPID}}:seq`, '9000000000000000')
  const [a, b] = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url }) as [FastifyInstance, FastifyInstance]
  const got = await getToken(a)
  t.equal(got.status, 200)
  t.not(got.token, 'planted-token', 'not served')
  t.equal(JSON.parse(await raw.get(`wxbroker:{${APPID}}:token`) ?? '{}').token, got.token, 'the real token replaced it in Redis')
  t.equal((await getToken(b)).token, got.token, 'and the other replica serves the real one')

  await raw.set(`wxbroker:{${APPID}}:token`, planted)
  const inv = await invalidate(b, got.token)
  t.equal(inv.status, 200)
  t.not(inv.token, 'planted-token')
  t.equal(JSON.parse(await raw.get(`wxbroker:{${APPID}}:token`) ?? '{}').token, inv.token, 'the next invalidate replaces a planted record')
})

t.test('an idle broker never lets a token expire: refresh-ahead runs on a schedule, once for all replicas', async t => {
  const redis = await startRedisServer(t)
  // Tokens live 8 s and WeChat renews a stable token when 5 s remain; the brokers refresh ahead at 5 s.
  const sim = await startSim(t, { tokenExpiresIn: 8, stableRenewBeforeSeconds: 5 })
  const apps = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, refreshAheadSeconds: 5 })
  const first = await getToken(apps[0] as FastifyInstance)
  t.equal(first.status, 200)
  await waitFor(async () => (await getToken(apps[1] as FastifyInstance)).token === first.token, { what: 'both replicas hold the token' })
  const before = sim.state.calls.stable_token
  // No request from here on until the schedule has refreshed.
  await waitFor(() => sim.state.calls.stable_token > before, { timeoutMs: 15_000, intervalMs: 100, what: 'a refresh with no request' })
  await waitFor(async () => {
    const tokens = await Promise.all(apps.map(async a => (await getToken(a)).token))
    return tokens.every(tok => tok !== first.token && tok === tokens[0])
  }, { timeoutMs: 10_000, what: 'both replicas on the new token' })
  t.equal(sim.state.calls.stable_token - before, 1, 'one upstream call for both replicas')
  t.ok(await metricValue(apps[0] as FastifyInstance, 'token_broker_refreshes_total', { reason: 'ahead' }) + await metricValue(apps[1] as FastifyInstance, 'token_broker_refreshes_total', { reason: 'ahead' }) >= 1, 'counted as a refresh-ahead')
})

t.test('a refresh slower than the lock\'s lifetime keeps the lock: one upstream call, not one per lifetime', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  // The upstream call takes 4 lock lifetimes; without extension a second replica would call too.
  sim.faults.add('stable_token', { kind: 'latency', latencyMs: 2000 }, 1)
  const apps = await replicas(t, 3, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, lockTtlMs: 500, upstreamTimeoutMs: 5000 })
  const results = await Promise.all(Array.from({ length: 30 }, async (_, i) => await getToken(apps[i % 3] as FastifyInstance)))
  t.ok(results.every(r => r.status === 200), 'all served')
  t.equal(new Set(results.map(r => r.token)).size, 1)
  t.equal(sim.state.calls.stable_token, 1, 'one upstream call: the holder extended its lock')
})

t.test('a failed refresh is remembered by every replica: a wrong secret on 3 replicas, 20 requests each', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  sim.state.apps.set(APPID, 'the-secret-was-rotated')
  const apps = await replicas(t, 3, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, failureMemoryMs: 30_000 })
  const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => await (apps[i % 3] as FastifyInstance).inject({ method: 'GET', url: TOKEN_URL, headers: auth() })))
  t.ok(results.every(r => r.statusCode === 502 && r.json().wechat_errcode === 40125), 'every caller hears WeChat\'s answer')
  t.ok(sim.state.calls.stable_token <= 2, `${sim.state.calls.stable_token} upstream call(s) for 60 requests on 3 replicas`)
  // A replica that starts now learns of the failure from Redis, not from WeChat.
  const before = sim.state.calls.stable_token
  const [late] = await replicas(t, 1, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, failureMemoryMs: 30_000 }) as [FastifyInstance]
  t.equal((await late.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })).json().wechat_errcode, 40125)
  t.equal(sim.state.calls.stable_token, before, 'a new replica does not ask WeChat again inside the window')
})

t.test('an idle broker never lets a ticket expire either: one getticket for all replicas', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t, { tokenExpiresIn: 8, stableRenewBeforeSeconds: 5 })
  const apps = await replicas(t, 2, { redis: redis.connection, redlock: [redis.connection], wechatBaseUrl: sim.url, refreshAheadSeconds: 5 })
  const ticket = async (app: FastifyInstance): Promise<string> => (await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/tickets/jsapi`, headers: auth() })).json().ticket
  const first = await ticket(apps[0] as FastifyInstance)
  await waitFor(async () => await ticket(apps[1] as FastifyInstance) === first, { what: 'both replicas hold the ticket' })
  const before = sim.state.calls.getticket
  t.equal(before, 1)
  // No request from here on until the schedule has fetched a new ticket.
  await waitFor(() => sim.state.calls.getticket > before, { timeoutMs: 15_000, intervalMs: 100, what: 'a ticket fetch with no request' })
  await waitFor(async () => {
    const tickets = await Promise.all(apps.map(async a => await ticket(a)))
    return tickets.every(x => x !== first && x === tickets[0])
  }, { timeoutMs: 10_000, what: 'both replicas on the new ticket' })
  t.equal(sim.state.calls.getticket - before, 1, 'one upstream call for both replicas')
})
