// SESSION_FORMAT=jwt on real Redis: refresh reuse detected across two login-api instances, and
// refresh families that survive a Sentinel failover (the master SIGKILLed after a rotation).
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { EnvReader, readRedisConnection } from '@wxlogin/service-kit'
import { redisCommand, startSentinelTopology, waitFor } from '@wxlogin/testing'
import { broker, build, jwtConfig, login, signingKeysText, useNock } from './helper.js'
import { stack } from './stack.js'

const keys = signingKeysText({ kid: 'shared' })

const refresh = async (app: FastifyInstance, refreshToken: string): Promise<{ statusCode: number, json: () => any }> =>
  await app.inject({ method: 'POST', url: '/api/user/token/refresh', payload: { refresh_token: refreshToken } })
const gateway = async (app: FastifyInstance, token: string): Promise<number> =>
  (await app.inject({ method: 'GET', url: '/api/user/session', headers: { authorization: `Bearer ${token}` } })).statusCode

t.test('two instances on one Redis: a token refreshed on A and presented again on B revokes the family on both', async t => {
  const { apps, mint, redis } = await stack(t, 2, { login: { jwt: jwtConfig(keys, {}, { graceSeconds: 0 }).jwt } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const first = (await login(a, { code: (await mint('thief-victim')).code })).json()
  t.equal(await gateway(b, first.token), 200, 'a token from A is accepted by B')
  const victim = await refresh(a, first.refresh_token)
  t.equal(victim.statusCode, 200, 'the victim refreshes on A')
  const thief = await refresh(b, first.refresh_token)
  t.equal(thief.statusCode, 401, 'the copy presented on B is reuse')
  t.equal((await refresh(a, victim.json().refresh_token)).statusCode, 401, 'the family is revoked for A too')
  t.equal(await gateway(a, victim.json().token), 401, 'its access tokens refused at the gateway route of A')
  t.equal(await gateway(b, first.token), 401, 'and of B')

  const stored = await redisCommand(redis.port, ['KEYS', '*refresh*'])
  t.notOk(stored.includes(first.refresh_token.split('.')[1]), 'no token is stored, only hashes')

  const again = (await login(b, { code: (await mint('thief-victim')).code })).json()
  const races = await Promise.all([refresh(a, again.refresh_token), refresh(b, again.refresh_token)])
  t.equal(races.filter(r => r.statusCode === 200).length, 1, 'with no grace, one of two concurrent refreshes wins')
})

t.test('the grace across instances: the same refresh token sent to A and B at once gets the same successor', async t => {
  const { apps, mint } = await stack(t, 2, { login: { jwt: jwtConfig(keys).jwt } })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const first = (await login(a, { code: (await mint('flaky-client')).code })).json()
  const answers = await Promise.all([refresh(a, first.refresh_token), refresh(b, first.refresh_token)])
  t.same(answers.map(r => r.statusCode), [200, 200])
  t.equal(answers[0]?.json().refresh_token, answers[1]?.json().refresh_token)
})

t.test('Redis Sentinel: refresh families survive the master SIGKILLed right after a rotation', async t => {
  const topo = await startSentinelTopology(t)
  const connection = readRedisConnection(new EnvReader({ REDIS_SENTINELS: topo.sentinels, REDIS_SENTINEL_MASTER: topo.masterName, REDIS_WAIT_REPLICAS: '1' }))
  const nock = useNock(t)
  const { app } = await build(t, jwtConfig(keys, { redis: connection }))
  await waitFor(() => app.redis?.ok(), { what: 'connected to the master', timeoutMs: 20_000 })
  broker.session(nock, 'failover-code', 'openid-failover')
  const first = (await login(app, { code: 'failover-code' })).json()
  t.ok(first.refresh_token, 'logged in')
  const rotated = await refresh(app, first.refresh_token)
  t.equal(rotated.statusCode, 200)

  const port = await topo.masterPort()
  await (topo.servers.find(s => s.port === port) as { kill: () => Promise<void> }).kill()
  await waitFor(async () => await topo.masterPort() !== port, { what: 'a replica promoted', timeoutMs: 30_000, intervalMs: 200 })
  // The login-api finds the new master by itself; until then refreshes may answer 503, never 401.
  const next = await waitFor(async () => {
    const r = await refresh(app, rotated.json().refresh_token)
    if (r.statusCode === 503) return null
    return r
  }, { what: 'a refresh answered after the failover', timeoutMs: 30_000, intervalMs: 250 })
  t.equal(next.statusCode, 200, 'the refresh token rotated before the failover still works after it')
  t.equal((await refresh(app, first.refresh_token)).statusCode, 401, 'and the one spent before it is still spent (reuse)')
  t.equal((await refresh(app, next.json().refresh_token)).statusCode, 401, 'which revoked the family')
})
