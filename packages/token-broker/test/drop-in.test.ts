import t from 'tap'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { APPID, CLIENT_TOKEN, OTHER_CLIENT_TOKEN, SECRET, auth, build, metricValue, testConfig } from './helper.js'
import { startBroker, startSim, type BrokerProcess } from './broker-processes.js'

// Black-box: broker processes (dist/server.js) on a real Redis, WeChat simulated over HTTP, and
// callers that know nothing but WeChat's own API shapes.

/**
 * What an SDK does, and nothing more: WeChat's token URLs on a configurable host, the token kept
 * until `expires_in` runs out, and after 40001 on a business call one force_refresh and one retry
 * (WxJava's and EasyWeChat's behaviour with the stable token).
 */
class WechatShapedSdk {
  private cached: { token: string, until: number } | null = null
  calls = 0
  constructor (private readonly tokenHost: string, private readonly apiHost: string, private readonly appid: string, private readonly secret: string) {}

  async stableToken (force: boolean): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.tokenHost}/cgi-bin/stable_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'client_credential', appid: this.appid, secret: this.secret, force_refresh: force })
    })
    if (res.status !== 200) throw new Error(`token endpoint answered HTTP ${res.status}`)
    return await res.json() as Record<string, unknown>
  }

  async classicToken (): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.tokenHost}/cgi-bin/token?grant_type=client_credential&appid=${this.appid}&secret=${encodeURIComponent(this.secret)}`)
    return await res.json() as Record<string, unknown>
  }

  private async token (force: boolean): Promise<string> {
    if (!force && this.cached !== null && this.cached.until > Date.now()) return this.cached.token
    const body = await this.stableToken(force)
    if (typeof body.access_token !== 'string') throw new Error(`token error ${String(body.errcode)}`)
    this.cached = { token: body.access_token, until: Date.now() + Number(body.expires_in) * 1000 }
    return body.access_token
  }

  /** A business call: the JS-SDK ticket, straight from "WeChat". */
  async businessCall (): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.token(attempt > 0)
      this.calls++
      const body = await (await fetch(`${this.apiHost}/cgi-bin/ticket/getticket?access_token=${token}&type=jsapi`)).json() as Record<string, unknown>
      if ((body.errcode === 40001 || body.errcode === 42001) && attempt === 0) continue
      return body
    }
  }
}

const metric = (text: string, name: string, labels: Record<string, string> = {}): number => {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop())
  }
  return sum
}

t.test('WeChat-shaped endpoints: an SDK pointed at two broker replicas shares their one token', async t => {
  const redis = await startRedisServer(t)
  // WeChat's 30 s between two forced refreshes would refuse the broker's right after the one below.
  const sim = await startSim(t, { forceRefreshMinIntervalSeconds: 0 })
  // A grace of 3 s: the 40 callers and the early force_refresh below fit in it on a busy machine.
  const graceMs = 3000
  const env = {
    REDIS_URL: redis.url,
    WECHAT_API_BASE_URL: sim.url,
    TOKEN_FORCE_REFRESH_GRACE_SECONDS: String(graceMs / 1000),
    TOKEN_FORCE_REFRESH_MIN_INTERVAL_SECONDS: '0'
  }
  const brokers = [await startBroker(t, env), await startBroker(t, env)] as const
  const sdks = brokers.map(b => new WechatShapedSdk(b.url, sim.url, APPID, CLIENT_TOKEN))

  const fetchedAt = Date.now()
  const answers = await Promise.all(Array.from({ length: 40 }, async (_, i) => i % 2 === 0 ? await sdks[i % 2]?.stableToken(false) : await sdks[i % 2]?.classicToken()))
  const tokens = new Set(answers.map(a => a?.access_token))
  t.equal(tokens.size, 1, 'stable_token and token callers on both replicas get one token')
  const [token] = [...tokens] as [string]
  t.match(answers[0], { access_token: String, expires_in: Number })
  t.notOk('errcode' in (answers[0] as object), 'no errcode on success, as WeChat')
  t.equal(sim.state.calls.stable_token, 1, 'one upstream call for 40 callers')
  t.equal(sim.state.calls.token, 0, 'a legacy /cgi-bin/token caller never makes WeChat issue a token')

  // Within the grace period a force_refresh is answered with the current token.
  const early = await Promise.all(sdks.map(async s => await s.stableToken(true)))
  t.same(early.map(a => a.access_token), [token, token], 'a token younger than the grace period is the answer')
  t.equal(sim.state.calls.stable_token, 1, 'without an upstream call')

  // The token goes bad behind the broker's back (someone forced a refresh with the real secret).
  await waitFor(() => Date.now() - fetchedAt > graceMs + 100, { what: 'the token to be older than the grace period' })
  t.ok(sim.state.stableToken(APPID, SECRET, 'client_credential', true).ok, 'a forced refresh behind the broker\'s back')
  const before = sim.state.calls.stable_token
  await waitFor(async () => {
    // Past the grace period the SDKs' force_refresh replaces it, once for both replicas.
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => await (sdks[i % 2] as WechatShapedSdk).businessCall()))
    return results.every(r => r.errcode === 0)
  }, { timeoutMs: 5000, intervalMs: 200, what: 'business calls to succeed after the SDKs\' force_refresh' })
  const forced = await Promise.all(brokers.map(async b => metric(await b.metrics(), 'token_broker_upstream_token_calls_total', { api: 'stable_token', force: 'true' })))
  t.equal(forced.reduce((a, b) => a + b, 0), 1, 'one forced refresh cluster-wide for all SDK retries')
  t.ok(sim.state.calls.stable_token - before <= 1, 'and no other upstream token call')
  const fresh = await sdks[1]?.stableToken(true)
  t.not(fresh?.access_token, token, 'callers now get the new token')

  for (const b of brokers) {
    t.notMatch(b.stderr(), CLIENT_TOKEN, 'the client token (the SDK\'s "secret") is never logged')
    t.notMatch(b.stderr(), SECRET, 'nor the appsecret')
    t.notMatch(b.stderr(), String(fresh?.access_token), 'nor a token')
  }
})

t.test('WeChat-shaped errors: WeChat\'s errcodes, HTTP 200, no hint of the appsecret', async t => {
  const sim = await startSim(t)
  const broker = await startBroker(t, { WECHAT_API_BASE_URL: sim.url })
  const post = async (body: unknown, type = 'application/json'): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`${broker.url}/cgi-bin/stable_token`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const ok = { grant_type: 'client_credential', appid: APPID, secret: CLIENT_TOKEN }
  const cases: Array<[string, unknown, number]> = [
    ['a wrong client token', { ...ok, secret: 'not-a-client-token-at-all' }, 40125],
    ['the real appsecret (callers never hold it)', { ...ok, secret: SECRET }, 40125],
    ['a client not allowed this app', { ...ok, secret: OTHER_CLIENT_TOKEN }, 40125],
    ['an appid the broker does not hold', { ...ok, appid: 'wxunknownapp00001' }, 40013],
    ['a wrong grant_type', { ...ok, grant_type: 'password' }, 40002],
    ['no appid', { grant_type: 'client_credential', secret: CLIENT_TOKEN }, 41002],
    ['no secret', { grant_type: 'client_credential', appid: APPID }, 41004],
    ['force_refresh that is not a boolean', { ...ok, force_refresh: 'yes' }, 47001],
    ['a body that is not JSON', '{"appid":', 47001]
  ]
  for (const [what, body, errcode] of cases) {
    const res = await post(body)
    t.equal(res.status, 200, `${what}: HTTP 200`)
    t.equal(res.body.errcode, errcode, `${what}: errcode ${errcode}`)
    t.type(res.body.errmsg, 'string')
    t.notOk('access_token' in res.body)
  }
  const classic = await (await fetch(`${broker.url}/cgi-bin/token?grant_type=client_credential&appid=${APPID}&secret=wrong-client-token`)).json() as Record<string, unknown>
  t.equal(classic.errcode, 40125)
  t.equal(sim.state.calls.stable_token + sim.state.calls.token, 0, 'no refused request reached WeChat')

  // WeChat itself failing is the broker's problem, not the caller's credentials: -1, retry.
  sim.state.apps.set(APPID, 'rotated-secret')
  const upstream = await post(ok)
  t.equal(upstream.body.errcode, -1, 'the broker\'s own secret refused upstream is -1 to the caller, not 40125')
  t.notMatch(JSON.stringify(upstream.body), SECRET)
})

t.test('tickets: one fetch for every replica, through the token; a 40001 on the way refreshes the token once', async t => {
  const redis = await startRedisServer(t)
  const sim = await startSim(t)
  const env = { REDIS_URL: redis.url, WECHAT_API_BASE_URL: sim.url, TOKEN_FORCE_REFRESH_MIN_INTERVAL_SECONDS: '0' }
  const brokers = [await startBroker(t, env), await startBroker(t, env), await startBroker(t, env)]
  const ticket = async (i: number, type = 'jsapi'): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`${(brokers[i % 3] as BrokerProcess).url}/v1/apps/${APPID}/tickets/${type}`, { headers: { authorization: `Bearer ${CLIENT_TOKEN}` } })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const results = await Promise.all(Array.from({ length: 150 }, async (_, i) => await ticket(i)))
  t.ok(results.every(r => r.status === 200), 'all served')
  t.equal(new Set(results.map(r => r.body.ticket)).size, 1, 'one ticket')
  t.match(results[0]?.body, { ticket: String, expires_in: Number, expires_at: String })
  t.equal(sim.state.calls.getticket, 1, 'one getticket call for 150 requests over 3 replicas')
  t.equal(sim.state.calls.stable_token, 1, 'and one token call')
  t.not((await ticket(0, 'wx_card')).body.ticket, results[0]?.body.ticket, 'wx_card is its own ticket')
  t.equal((await ticket(0, 'nope')).status, 400)
})

t.test('a ticket fetch that meets 40001 refreshes the token (compare-and-refresh) and fetches again', async t => {
  const sim = await startSim(t)
  const { app } = await build(t, testConfig({ wechatBaseUrl: sim.url }))
  const token = (await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })).json().access_token
  sim.faults.add('getticket', { kind: 'errcode', errcode: 40001 }, 1)
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/tickets/jsapi`, headers: auth() })
  t.equal(res.statusCode, 200)
  t.equal(sim.state.calls.getticket, 2, 'fetched again after the refresh')
  t.equal(sim.state.calls.stable_token, 2, 'the token was refreshed once')
  t.not((await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/access-token`, headers: auth() })).json().access_token, token, 'by force: the rejected token is replaced')
  t.equal(await metricValue(app, 'token_broker_refreshes_total', { reason: 'invalidated', result: 'ok' }), 1)
  t.equal(await metricValue(app, 'token_broker_ticket_refreshes_total', { type: 'jsapi', reason: 'miss', result: 'ok' }), 1)

  // A ticket is kept like a token: the next request is served from memory.
  t.equal((await app.inject({ method: 'GET', url: `/v1/apps/${APPID}/tickets/jsapi`, headers: auth() })).json().ticket, res.json().ticket)
  t.equal(sim.state.calls.getticket, 2)
  t.equal(await metricValue(app, 'token_broker_ticket_requests_total', { type: 'jsapi', source: 'memory' }), 1)
})
