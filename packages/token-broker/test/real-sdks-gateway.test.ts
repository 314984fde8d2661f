// Real npm SDKs, unmodified, with their base URL at the broker (the gateway in WeChat's shape) and
// a surrogate-token client: two SDK instances on two broker processes sharing one Redis, through a
// revocation by WeChat. Every call succeeds from the SDK's side; WeChat sees one refresh.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WechatAPI from 'co-wechat-api'
// The package's index requires a module it does not ship (node-socialite's ProviderInterface):
// the mini-program's Application is imported by its path, as the other real-SDK test does.
import MiniApp from 'node-easywechat/dist/MiniApp/Application.js'
import { startRedisServer } from '@wxlogin/testing'
import { CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { startBroker, startSim, type BrokerProcess } from './broker-processes.js'
import { APPID } from './helper.js'

const GATEWAY_TOKEN = 'client-token-gateway-sdk-service-0123456'
const CLIENTS = JSON.stringify([
  { name: 'sdk-service', token: GATEWAY_TOKEN, apps: ['*'], token_form: 'surrogate', apis: ['/cgi-bin/getcallbackip', '/wxa/*'] }
])

async function brokers (t: Test, sim: { url: string }): Promise<[BrokerProcess, BrokerProcess]> {
  const redis = await startRedisServer(t)
  const env = { REDIS_URL: redis.url, WECHAT_API_BASE_URL: sim.url, BROKER_CLIENTS: CLIENTS }
  return [await startBroker(t, env), await startBroker(t, env)]
}

const revoke = async (sim: { url: string }): Promise<void> => {
  const res = await fetch(`${sim.url}${CONTROL_PREFIX}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ appid: APPID })
  })
  if (res.status !== 200) throw new Error(`revoke answered ${res.status}`)
}

t.test('co-wechat-api 3.11.0 with its prefix at the broker: surrogate tokens, a revocation unseen, one refresh', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a, b] = await brokers(t, sim)
  // Its documented options only: the client token where the appsecret goes, the prefix at the broker.
  const one = new WechatAPI(APPID, GATEWAY_TOKEN)
  one.prefix = `${a.url}/cgi-bin/`
  const two = new WechatAPI(APPID, GATEWAY_TOKEN)
  two.prefix = `${b.url}/cgi-bin/`
  t.match(await one.getIp(), { ip_list: [] }, 'an API call through the broker')
  t.match(await two.getIp(), { ip_list: [] })
  const held = (await one.getAccessToken()).accessToken
  t.match(held, /^wxbs1_/, 'the SDK holds a surrogate, never the real token')
  const direct = await (await fetch(`${sim.url}/cgi-bin/getcallbackip?access_token=${held}`)).json() as { errcode?: number }
  t.equal(direct.errcode, 40001, 'WeChat refuses it: worthless outside the broker')

  await revoke(sim)
  const before = sim.state.calls.stable_token
  const answers = await Promise.all([one.getIp(), two.getIp(), one.getIp(), two.getIp()])
  for (const x of answers) t.match(x, { ip_list: [] }, 'every call succeeds from the SDK\'s side')
  t.equal(sim.state.calls.stable_token - before, 1, 'WeChat saw one refresh for both brokers')
  t.equal((await one.getAccessToken()).accessToken.startsWith('wxbs1_'), true)
  t.notOk(a.stderr().includes(held) || b.stderr().includes(held), 'no surrogate in the brokers\' logs')
})

t.test('node-easywechat 3.6.2 with http.baseURL at the broker: the same, through its own client', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a, b] = await brokers(t, sim)
  const cache = mkdtempSync(join(tmpdir(), 'easywechat-'))
  t.teardown(() => { rmSync(cache, { recursive: true, force: true }) })
  // Its documented options: app_id, secret (the client token), http.baseURL, file_cache.
  const app = (url: string, dir: string): InstanceType<typeof MiniApp> =>
    new MiniApp({ app_id: APPID, secret: GATEWAY_TOKEN, use_stable_access_token: true, http: { baseURL: `${url}/` }, file_cache: { path: join(cache, dir), dirMode: 0o700, fileMode: 0o600, ext: '.cache' } })
  const one = app(a.url, 'a').getClient()
  const two = app(b.url, 'b').getClient()
  const ip = async (client: typeof one): Promise<unknown> => (await client.get('cgi-bin/getcallbackip')).toObject()
  t.match(await ip(one), { ip_list: [] })
  t.match(await ip(two), { ip_list: [] })

  await revoke(sim)
  const before = sim.state.calls.stable_token
  const answers = await Promise.all([ip(one), ip(two)])
  for (const x of answers) t.match(x, { ip_list: [] }, 'no 40001 reaches the SDK (it has no retry of its own for one)')
  t.equal(sim.state.calls.stable_token - before, 1, 'one refresh')
})
