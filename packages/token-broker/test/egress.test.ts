// WECHAT_EGRESS_PROXY: every request to WeChat through a real forward proxy (the npm `proxy`
// package, with basic authentication), and none around it when the proxy is gone.
import t from 'tap'
import http from 'node:http'
import { createProxy } from 'proxy'
import { createSimulator } from '@wxlogin/wechat-sim'
import { APPID, CLIENT_TOKEN, SECRET, auth } from './helper.js'
import { startBroker } from './broker-processes.js'
import { loadConfig } from '../src/config.js'

const PROXY_USER = 'egress'
const PROXY_PASSWORD = 'proxy-password-never-logged'
const fast = { WECHAT_TIMEOUT_MS: '1000', WECHAT_RETRY_BUDGET_MS: '1000' }

t.test('every WeChat call goes through the proxy, with its credentials; the proxy stopped, calls fail rather than go around', async t => {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }] })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  const simUrl = `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}`

  const seen: string[] = []
  const server = createProxy(http.createServer())
  const expected = `Basic ${Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64')}`
  server.authenticate = req => req.headers['proxy-authorization'] === expected
  // hpagent tunnels (CONNECT) to http and https targets alike.
  server.on('connect', (req: http.IncomingMessage) => { seen.push(req.url ?? '') })
  // Tunnels are sockets the server no longer tracks: stopping the proxy ends them too.
  const sockets = new Set<import('node:net').Socket>()
  server.on('connection', (socket: import('node:net').Socket) => { sockets.add(socket) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const proxyPort = (server.address() as { port: number }).port
  let stopped = false
  t.teardown(async () => { if (!stopped) await new Promise(resolve => server.close(resolve)) })

  const egressProxy = `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${proxyPort}`
  // Broker processes: this test process has nock's interceptors loaded, which a real deployment does not.
  const broker = await startBroker(t, { WECHAT_API_BASE_URL: simUrl, WECHAT_EGRESS_PROXY: egressProxy, ...fast })
  const get = async (b: typeof broker, path: string, body?: object): Promise<{ status: number, text: string }> => {
    const res = await fetch(`${b.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...auth(CLIENT_TOKEN), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: res.status, text: await res.text() }
  }
  const token = await get(broker, `/v1/apps/${APPID}/access-token`)
  t.equal(token.status, 200, token.text)
  const simHost = new URL(simUrl).host
  t.ok(seen.length > 0 && seen.every(h => h === simHost), `the token call went through the proxy (${seen.join(', ')})`)
  const code = (await sim.app.inject({ method: 'POST', url: '/__sim/login-codes', payload: { appid: APPID } })).json().code
  t.equal((await get(broker, `/v1/apps/${APPID}/code2session`, { js_code: code })).status, 200)
  t.ok(seen.every(h => h === simHost), 'to WeChat and nowhere else')

  // A wrong password: the proxy refuses (407), and the broker says WeChat is unavailable.
  const wrong = await startBroker(t, { WECHAT_API_BASE_URL: simUrl, WECHAT_EGRESS_PROXY: egressProxy.replace(PROXY_PASSWORD, 'wrong-password'), ...fast })
  const refused = await get(wrong, `/v1/apps/${APPID}/access-token`)
  t.equal(refused.status, 503)

  const closed = new Promise(resolve => server.close(resolve))
  for (const socket of sockets) socket.destroy()
  await closed
  stopped = true
  const calls = sim.state.calls.jscode2session
  const code2 = (await sim.app.inject({ method: 'POST', url: '/__sim/login-codes', payload: { appid: APPID } })).json().code
  const after = await get(broker, `/v1/apps/${APPID}/code2session`, { js_code: code2 })
  t.equal(after.status, 503, 'no proxy: no WeChat')
  t.equal(sim.state.calls.jscode2session, calls, 'nothing went around the proxy')
  for (const text of [broker.stderr(), wrong.stderr(), token.text, refused.text, after.text]) {
    t.notOk(text.includes(PROXY_PASSWORD), 'the proxy password appears nowhere')
  }
})

t.test('WECHAT_EGRESS_PROXY is checked, and its messages never quote it', async t => {
  const base = { WECHAT_APPID: APPID, WECHAT_SECRET: SECRET, BROKER_CLIENTS: JSON.stringify([{ name: 'a', token: 'client-token-login-api-0123456789', apps: ['*'] }]) }
  t.equal(loadConfig({ ...base, WECHAT_EGRESS_PROXY: 'http://u:p@proxy.internal:3128' }).egressProxy, 'http://u:p@proxy.internal:3128')
  for (const bad of ['socks5://u:secretpw@h:1080', 'not a url secretpw', 'http://u:secretpw@h:3128/path']) {
    let message = ''
    try {
      loadConfig({ ...base, WECHAT_EGRESS_PROXY: bad })
    } catch (err) {
      message = (err as Error).message
    }
    t.match(message, /WECHAT_EGRESS_PROXY/, `refused: ${bad.split(' ')[0]?.slice(0, 8) ?? ''}`)
    t.notMatch(message, /secretpw/, 'without quoting it')
  }
})
