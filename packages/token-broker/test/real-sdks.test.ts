import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WechatAPI from 'co-wechat-api'
import EasyAccessToken from 'node-easywechat/dist/MiniApp/AccessToken.js'
import EasyHttpClient from 'node-easywechat/dist/Core/HttpClient/HttpClient.js'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { jssdkSignature } from '../src/credentials/jssdk.js'
import { ReaskDetector } from '../src/sdk-compat/reask.js'
import { startBroker, startSim, type BrokerProcess } from './broker-processes.js'
import { APPID, CLIENT_TOKEN, auth } from './helper.js'

const execFileP = promisify(execFile)
const CLIENT = fileURLToPath(new URL('fixtures/wechat-jssdk-client.mjs', import.meta.url))

// Real SDKs from npm, unmodified, configured the way a team switches to the broker, on two (or
// three) broker processes sharing one Redis; then WeChat revokes the token while they call.

/**
 * co-wechat-api has no option for its token URL alone: `prefix` is both the token URL's base and
 * every /cgi-bin/ API's, so pointing it at the broker would send all API traffic there. Its
 * documented extension point is the class: override getAccessToken() to ask the broker's
 * WeChat-shaped /cgi-bin/token (the client token where the appsecret goes), and keep its own
 * 40001 handling, which asks getAccessToken() again. docs/sdk-drop-in.md shows the same lines.
 */
function brokerBackedApi (brokerUrl: string, wechatUrl: string): InstanceType<typeof WechatAPI> {
  class BrokerWechatAPI extends WechatAPI {
    override async getAccessToken (): Promise<{ accessToken: string, expireTime: number }> {
      const data = await this.request(`${brokerUrl}/cgi-bin/token?grant_type=client_credential&appid=${this.appid}&secret=${encodeURIComponent(this.appsecret)}`)
      const token = { accessToken: data.access_token as string, expireTime: Date.now() + (Number(data.expires_in) - 10) * 1000 }
      await this.saveToken(token)
      return token
    }
  }
  const api = new BrokerWechatAPI(APPID, CLIENT_TOKEN)
  // The tests' "WeChat" is the simulator; in production this line is not there.
  api.prefix = `${wechatUrl}/cgi-bin/`
  return api
}

const count = (text: string, name: string, labels: string): number =>
  text.split('\n').filter(l => l.startsWith(`${name}{`) && l.includes(labels)).reduce((n, l) => n + Number(l.split(' ').pop()), 0)

async function brokers (t: Test, n: number, sim: { url: string }, env: Record<string, string> = { TOKEN_VERIFY_MIN_INTERVAL_SECONDS: '1' }): Promise<BrokerProcess[]> {
  const redis = await startRedisServer(t)
  const out: BrokerProcess[] = []
  for (let i = 0; i < n; i++) out.push(await startBroker(t, { REDIS_URL: redis.url, WECHAT_API_BASE_URL: sim.url, ...env }))
  return out
}

const revoke = async (sim: { url: string }): Promise<void> => {
  const res = await fetch(`${sim.url}${CONTROL_PREFIX}/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ appid: APPID }) })
  if (res.status !== 200) throw new Error(`revoke answered ${res.status}`)
}

t.test('co-wechat-api 3.11.0 on two brokers: after WeChat revokes the token, both recover, with one upstream refresh', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a, b] = await brokers(t, 2, sim) as [BrokerProcess, BrokerProcess]
  const one = brokerBackedApi(a.url, sim.url)
  const two = brokerBackedApi(b.url, sim.url)
  t.match(await one.getIp(), { ip_list: [] }, 'an API call with the broker\'s token')
  t.match(await two.getIp(), { ip_list: [] })
  await one.getIp()
  t.equal(sim.state.calls.stable_token, 1, 'one token for both')
  t.equal(count(await a.metrics(), 'token_broker_verifications_total', ''), 0, 'an SDK using its cached token causes no check')

  await revoke(sim)
  const before = sim.state.calls.stable_token
  const [x, y] = await Promise.all([one.getIp(), two.getIp()])
  t.match(x, { ip_list: [] }, 'the first SDK recovered')
  t.match(y, { ip_list: [] }, 'and the second')
  t.equal(sim.state.calls.stable_token - before, 1, 'with one upstream refresh between them')
  const metrics = await a.metrics() + await b.metrics()
  t.equal(count(metrics, 'token_broker_verifications_total', 'result="invalid"'), 1, 'one check with WeChat said the token is dead')
  t.match(await one.getIp(), { ip_list: [] }, 'and it goes on working')
})

t.test('co-wechat-api on two brokers (default settings): a token revoked right after a check that found it valid still recovers', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a, b] = await brokers(t, 2, sim, {}) as [BrokerProcess, BrokerProcess]
  const one = brokerBackedApi(a.url, sim.url)
  const two = brokerBackedApi(b.url, sim.url)
  t.match(await one.getIp(), { ip_list: [] })
  t.match(await two.getIp(), { ip_list: [] })
  // The same caller (client token, address) asks broker A again: a check, which finds the token valid.
  const ask = async (): Promise<unknown> => await (await fetch(`${a.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${CLIENT_TOKEN}`)).json()
  await ask()
  await ask()
  await waitFor(() => sim.state.calls.getcallbackip >= 1, { what: 'a check' })
  t.ok(count(await a.metrics(), 'token_broker_verifications_total', 'result="valid"') >= 1, 'the check said valid')

  // Revoked at once: an old "valid" must not answer the SDKs' re-asks that follow their 40001s.
  await revoke(sim)
  const before = sim.state.calls.stable_token
  const [x, y] = await Promise.all([one.getIp(), two.getIp()])
  t.match(x, { ip_list: [] }, 'the SDK on A recovered')
  t.match(y, { ip_list: [] }, 'and the SDK on B')
  t.equal(sim.state.calls.stable_token - before, 1, 'with one refresh between them')
})

t.test('wechat-jssdk 5.1.0: its accessTokenUrl and ticketUrl at the broker; the signature matches the broker\'s; a revoked token recovers', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a] = await brokers(t, 1, sim) as [BrokerProcess]
  const dir = mkdtempSync(join(tmpdir(), 'wechat-jssdk-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // Asynchronously: the simulator the brokers call runs in this process.
  const run = async (mode: 'sign' | 'force', url = ''): Promise<Record<string, unknown>> => {
    const { stdout } = await execFileP(process.execPath, [CLIENT, mode, a.url, APPID, CLIENT_TOKEN, join(dir, 'wechat-info.json'), url], { timeout: 30_000 })
    return JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, unknown>
  }

  const url = 'https://shop.example/item?id=7'
  const sig = await run('sign', url) as { nonceStr: string, timestamp: string, signature: string, url: string }
  const brokerTicket = (await (await fetch(`${a.url}/v1/apps/${APPID}/tickets/jsapi`, { headers: auth() })).json() as { ticket: string }).ticket
  t.equal(sim.state.calls.getticket, 1, 'the ticket came from the broker: WeChat issued one')
  t.equal(sig.signature, jssdkSignature({ ticket: brokerTicket, nonceStr: sig.nonceStr, timestamp: Number(sig.timestamp), url }), 'the SDK signed with the broker\'s ticket: the broker\'s signature for the same url, nonce and timestamp')

  await revoke(sim)
  const before = sim.state.calls.stable_token
  // What its users do after an API call answered 40001.
  const refreshed = await run('force') as { accessToken: string }
  t.equal(sim.state.calls.stable_token - before, 1, 'the broker checked, found the token dead, refreshed once')
  const check = await (await fetch(`${sim.url}/cgi-bin/getcallbackip?access_token=${refreshed.accessToken}`)).json() as Record<string, unknown>
  t.ok(Array.isArray(check.ip_list), 'the SDK holds a token WeChat takes')
})

t.test('node-easywechat 3.6.2 (stable, force_refresh) on two brokers: a revoked token within the grace is checked, not handed back', async t => {
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  const [a, b] = await brokers(t, 2, sim) as [BrokerProcess, BrokerProcess]
  // Its own AccessToken class with an HTTP client whose base is the broker, stable mode.
  const one = new EasyAccessToken(APPID, CLIENT_TOKEN, null, null, EasyHttpClient.create({ baseURL: `${a.url}/` }), true)
  const two = new EasyAccessToken(APPID, CLIENT_TOKEN, null, null, EasyHttpClient.create({ baseURL: `${b.url}/` }), true)
  const first = await one.getToken()
  t.equal(await two.getToken(), first, 'one token for both')
  await revoke(sim)
  const before = sim.state.calls.stable_token
  // What its users do after a 40001: force a refresh. The token is seconds old: inside the grace.
  const [x, y] = await Promise.all([one.getStableAccessToken(true), two.getStableAccessToken(true)])
  t.not(x, first, 'not the revoked token back')
  t.equal(x, y)
  t.equal(sim.state.calls.stable_token - before, 1, 'one upstream refresh for both')
  const check = await (await fetch(`${sim.url}/cgi-bin/getcallbackip?access_token=${x}`)).json() as Record<string, unknown>
  t.ok(Array.isArray(check.ip_list), 'WeChat takes it')
})

t.test('getticket: the broker\'s ticket for the app of a token it serves; WeChat\'s 40001 for any other', async t => {
  const sim = await startSim(t)
  const [a] = await brokers(t, 1, sim) as [BrokerProcess]
  const token = (await (await fetch(`${a.url}/v1/apps/${APPID}/access-token`, { headers: auth() })).json() as { access_token: string }).access_token
  const ok = await (await fetch(`${a.url}/cgi-bin/ticket/getticket?access_token=${token}&type=jsapi`)).json() as Record<string, unknown>
  t.match(ok, { errcode: 0, errmsg: 'ok', ticket: /./, expires_in: Number })
  for (const [query, errcode] of [[`access_token=${token}x&type=jsapi`, 40001], ['access_token=&type=jsapi', 41001], [`access_token=${token}&type=other`, 40097]] as const) {
    t.match(await (await fetch(`${a.url}/cgi-bin/ticket/getticket?${query}`)).json(), { errcode }, query.slice(0, 40))
  }
  t.equal(sim.state.calls.getticket, 1, 'one ticket from WeChat, however often it is asked')
})

t.test('a verification storm: 100 callers re-asking at once on 3 replicas share checks, one a second at most', async t => {
  const sim = await startSim(t)
  const replicas = await brokers(t, 3, sim)
  const ask = async (b: BrokerProcess): Promise<string> => (await (await fetch(`${b.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=${CLIENT_TOKEN}`)).json() as { access_token: string }).access_token
  const first = await Promise.all(replicas.map(ask))
  t.equal(new Set(first).size, 1)
  const started = Date.now()
  await Promise.all(Array.from({ length: 100 }, async (_, i) => await ask(replicas[i % 3] as BrokerProcess)))
  const seconds = (Date.now() - started) / 1000
  await waitFor(() => sim.state.calls.getcallbackip >= 1, { what: 'a check' })
  // Re-asks that arrive while a check runs share it; one that arrives after it finished waits for
  // the next (its SDK may have met 40001 since), at most one a second (TOKEN_VERIFY_MIN_INTERVAL_SECONDS).
  t.ok(sim.state.calls.getcallbackip <= 1 + Math.ceil(seconds), `${sim.state.calls.getcallbackip} checks in ${seconds} s for 100 re-asks`)
  t.equal(sim.state.calls.stable_token, 1, 'and no refresh: the token works')
})

t.test('what counts as asking again: the same token to the same caller within the window, nothing else', async t => {
  const d = new ReaskDetector(60_000)
  t.notOk(d.served(APPID, 'svc\0ip', 'T1', 0), 'the first ask')
  t.ok(d.served(APPID, 'svc\0ip', 'T1', 5_000), 'the same token again 5 s later: an SDK after a 40001')
  t.notOk(d.served(APPID, 'svc\0ip', 'T2', 6_000), 'a new token is a normal miss')
  t.notOk(d.served(APPID, 'svc\0ip', 'T2', 7_000_000), 'the same token after its expires_in: an SDK\'s normal cache miss')
  t.notOk(d.served(APPID, 'other\0ip', 'T2', 7_000_001), 'another caller')
  const small = new ReaskDetector(60_000, 2)
  small.served(APPID, 'a', 'T', 0)
  small.served(APPID, 'b', 'T', 0)
  small.served(APPID, 'c', 'T', 0)
  t.notOk(small.served(APPID, 'a', 'T', 1), 'bounded: the oldest caller is forgotten')
})
