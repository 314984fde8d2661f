// Logins on a real Redis Cluster (3 masters, 3 replicas), with REDIS_WAIT_REPLICAS=1: the
// login's scripts where its keys share a slot, the separate steps where they cannot (a user of
// the previous key layout, a second mini-program's identity), and the guarantees of every mode.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { EnvReader, keySlot, readRedisConnection } from '@wxlogin/service-kit'
import { redisCommand, startCluster, waitFor, type ClusterTopology } from '@wxlogin/testing'
import { APPID, login } from './helper.js'
import { stack } from './stack.js'

const SECOND_APP = 'wxlogintest000002'
/** Two apps are served: a login names its own. */
const first = async (m: Promise<{ code: string, phoneCode: string }>): Promise<object> => ({ ...(await m), appid: APPID })

/** The login events on the stream, as [type, user_id, openid] triples. */
async function events (topo: ClusterTopology): Promise<string[][]> {
  const node = await topo.masterOf('wxlogin:events')
  const raw = await redisCommand(node.port, ['XRANGE', 'wxlogin:events', '-', '+'])
  const out: string[][] = []
  const lines = raw.split('\r\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '$4' && lines[i + 1] === 'type') {
      const field = (name: string): string => { const at = lines.indexOf(name, i); return lines[at + 2] as string }
      out.push([lines[i + 3] as string, field('user_id'), field('openid')])
    }
  }
  return out
}

t.test('Redis Cluster: logins through the scripts, old and spread users, races and the phone limit', async t => {
  const topo = await startCluster(t)
  const redis = readRedisConnection(new EnvReader({ REDIS_CLUSTER_NODES: topo.nodes, REDIS_WAIT_REPLICAS: '1' }))
  const { apps, mint } = await stack(t, 2, { redis, appids: [APPID, SECOND_APP] })
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  for (const app of apps) await waitFor(() => app.redis?.ok(), { what: 'connected to the cluster', timeoutMs: 20_000 })

  await t.test('a new user\'s record shares its identity\'s slot; the returning login finds it', async t => {
    const one = await login(a, await first(mint('cl-new', { unionid: 'cl-union' })))
    t.equal(one.statusCode, 200)
    t.equal(one.json().is_new_user, true)
    const userId = one.json().user.user_id as string
    t.equal(keySlot(`wxlogin:user:${userId}`), keySlot(`wxlogin:identity:${APPID}:cl-new`), 'one slot')
    t.match(userId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'still a UUID')
    const again = await login(b, await first(mint('cl-new', { unionid: 'cl-union' })))
    t.same([again.json().is_new_user, again.json().user.user_id, again.json().user.phone?.purePhoneNumber], [false, userId, '13800138000'])
    // A phone set for the first time is a change too.
    t.same((await events(topo)).filter(e => e[2] === 'cl-new').map(e => e[0]), ['user.created', 'user.logged_in', 'user.phone_changed', 'user.logged_in'], 'each event once')
  })

  await t.test('another app\'s identity joins the user by unionid (its record is in another slot)', async t => {
    const userId = (await login(a, { code: (await mint('cl-new', { unionid: 'cl-union' })).code, appid: APPID })).json().user.user_id
    const other = await login(b, { code: (await mint('cl-other', { appid: SECOND_APP, unionid: 'cl-union' })).code, appid: SECOND_APP })
    t.equal(other.statusCode, 200)
    t.same([other.json().is_new_user, other.json().user.user_id], [false, userId])
    const back = await login(a, { code: (await mint('cl-other', { appid: SECOND_APP, unionid: 'cl-union' })).code, appid: SECOND_APP, nickname: 'Two' })
    t.same([back.json().user.user_id, back.json().user.nickname], [userId, 'Two'])
    const mine = (await events(topo)).filter(e => e[2] === 'cl-other').map(e => e[0])
    t.same(mine, ['user.logged_in', 'user.logged_in'], 'joining is not a new user')
  })

  await t.test('a user of the previous key layout (its record in any slot) logs in as returning', async t => {
    // As an earlier release wrote it: a random user_id, its record wherever that hashes.
    const userId = randomUUID()
    const now = new Date().toISOString()
    const record = { user_id: userId, unionid: null, nickname: 'Old', head_pic: null, phone: null, identities: [{ appid: APPID, openid: 'cl-old' }], created_at: now, updated_at: now }
    await a.redis?.cmd.set(a.loginKeys.user(userId), JSON.stringify(record))
    await a.redis?.cmd.set(a.loginKeys.identity(APPID, 'cl-old'), userId)
    const res = await login(b, { code: (await mint('cl-old')).code, appid: APPID })
    t.same([res.statusCode, res.json().is_new_user, res.json().user.user_id, res.json().user.nickname], [200, false, userId, 'Old'])
  })

  await t.test('ten logins of one new user at once, on two instances: one user, created once', async t => {
    const codes = await Promise.all(Array.from({ length: 10 }, async () => (await mint('cl-race')).code))
    const answers = await Promise.all(codes.map(async (code, i) => await login(i % 2 === 0 ? a : b, { code, nickname: `n${i}`, appid: APPID })))
    t.same(answers.map(r => r.statusCode), Array(10).fill(200))
    t.equal(new Set(answers.map(r => r.json().user.user_id)).size, 1, 'one user_id')
    t.equal(answers.filter(r => r.json().is_new_user === true).length, 1, 'one of them is the new user')
    const mine = (await events(topo)).filter(e => e[2] === 'cl-race')
    t.equal(mine.filter(e => e[0] === 'user.created').length, 1, 'one user.created')
    t.equal(mine.filter(e => e[0] === 'user.logged_in').length, 10, 'a user.logged_in for each login, never twice')
    const me = await a.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: `Bearer ${answers[3]?.json().token as string}` } })
    t.equal(me.statusCode, 200, 'every session works (none of a refused attempt was answered)')
  })

  await t.test('the per-user phone limit: counted with the claim, the 6th exchange is 429', async t => {
    for (let i = 0; i < 5; i++) t.equal((await login(i % 2 === 0 ? a : b, await first(mint('cl-limit')))).json().phone_error, null)
    const sixth = await login(b, await first(mint('cl-limit')))
    t.same([sixth.statusCode, sixth.json().error], [429, 'rate_limited'])
  })
})

t.test('one Redis: ten logins of one new user at once on two instances commit once each, events once each', async t => {
  const { apps, mint, redis } = await stack(t, 2, { login: { phoneRateLimitMax: 100 } })
  const codes = await Promise.all(Array.from({ length: 10 }, async () => await mint('one-race', { unionid: 'one-race-union' })))
  const answers = await Promise.all(codes.map(async (m, i) => await login(apps[i % 2] as FastifyInstance, { ...m, nickname: `n${i}` })))
  t.same(answers.map(r => r.statusCode), Array(10).fill(200))
  t.equal(new Set(answers.map(r => r.json().user.user_id)).size, 1, 'one user_id')
  t.equal(answers.filter(r => r.json().is_new_user === true).length, 1, 'one new user')
  const raw = await redisCommand(redis.port, ['XRANGE', 'wxlogin:events', '-', '+'])
  t.equal(raw.split('user.created').length - 1, 1, 'one user.created')
  t.equal(raw.split('user.logged_in').length - 1, 10, 'one user.logged_in a login')
  t.equal(raw.split('user.phone_changed').length - 1, 1, 'the phone set once (the same number after)')
  t.equal(await redisCommand(redis.port, ['GET', 'wxlogin:unionid:one-race-union']), `$36\r\n${answers[0]?.json().user.user_id as string}\r\n`, 'the unionid names the user')
})
