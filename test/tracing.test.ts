import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { freePort, startRedisServer, startServiceProcess, TEST_PII_KEYS, waitFor, waitServiceReady } from '@wxlogin/testing'
import { root } from './helpers.js'

// One login, one trace: the simulator, a broker and a login-api as processes exporting to an
// OTLP/HTTP receiver here (the official exporter's JSON encoding, decoded by this test alone).

const APPID = 'wxtracing00000001'
const SECRET = 'tracing-test-secret'
const CLIENT_TOKEN = randomBytes(32).toString('base64url')
const PHONE = '13800138000'

interface OtlpSpan { traceId: string, spanId: string, parentSpanId?: string, name: string, kind: number, attributes?: Array<{ key: string, value: Record<string, unknown> }> }
interface Exported { service: string, span: OtlpSpan }

/** An OTLP/HTTP receiver for traces: every span posted to /v1/traces, with its service's name. */
async function receiver (t: Test, port = 0): Promise<{ url: string, spans: Exported[], requests: () => number }> {
  const spans: Exported[] = []
  let requests = 0
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      requests++
      if (req.url === '/v1/traces' && (req.headers['content-type'] ?? '').includes('json')) {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string, value: { stringValue?: string } }> }, scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find(a => a.key === 'service.name')?.value.stringValue ?? '?'
          for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ service, span })
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  t.teardown(async () => { await new Promise(resolve => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, requests: () => requests }
}

async function service (t: Test, script: string, env: Record<string, string>, ready = '/readyz'): Promise<string> {
  const port = await freePort()
  const proc = startServiceProcess(`${root}${script}`, { env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(await freePort()), LOG_LEVEL: 'warn', ...env } })
  t.teardown(async () => { await proc.stop() })
  const url = `http://127.0.0.1:${port}`
  await waitServiceReady(proc, async () => (await fetch(`${url}${ready}`)).status === 200, { what: script, timeoutMs: 30_000 })
  return url
}

const post = async (url: string, body: object, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json().catch(() => null) }
}

async function stack (t: Test, otel: Record<string, string>): Promise<{ sim: string, login: string }> {
  const redis = await startRedisServer(t)
  const sim = await service(t, 'packages/wechat-sim/dist/server.js', { SIM_APPS: JSON.stringify([{ appid: APPID, secret: SECRET }]) }, '/healthz')
  const common = { WECHAT_APPID: APPID, WECHAT_API_BASE_URL: sim, WECHAT_API_ALLOW_HTTP: 'true', REDIS_URL: redis.url }
  const broker = await service(t, 'packages/token-broker/dist/server.js', { ...common, ...otel, WECHAT_SECRET: SECRET, BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token: CLIENT_TOKEN, apps: [APPID] }]) })
  const login = await service(t, 'packages/login-api/dist/server.js', { ...common, ...otel, BROKER_URL: broker, BROKER_TOKEN: CLIENT_TOKEN, PII_ENCRYPTION_KEY: TEST_PII_KEYS })
  return { sim, login }
}

async function loginBody (sim: string, openid: string): Promise<{ code: string, phoneCode: string, retry_key: string }> {
  const code = (await post(`${sim}/__sim/login-codes`, { openid })).body.code as string
  const phoneCode = (await post(`${sim}/__sim/phone-codes`, { openid, phoneNumber: PHONE })).body.code as string
  return { code, phoneCode, retry_key: randomBytes(16).toString('hex') }
}

const otelEnv = (url: string): Record<string, string> => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '50'
})

t.test('a login with a traceparent: one trace, spans of both services parented correctly, nothing personal in any attribute', async t => {
  const otlp = await receiver(t)
  const { sim, login } = await stack(t, otelEnv(otlp.url))
  const traceId = randomBytes(16).toString('hex')
  const parent = randomBytes(8).toString('hex')
  const body = await loginBody(sim, 'o-traced-user')
  const res = await post(`${login}/api/user/thirdLogin`, body, { traceparent: `00-${traceId}-${parent}-01` })
  t.equal(res.status, 200)
  const secrets = [body.code, body.phoneCode, body.retry_key, PHONE, 'o-traced-user', CLIENT_TOKEN, SECRET, res.body.token]

  const has = (name: string, service: string): boolean => otlp.spans.some(s => s.span.traceId === traceId && s.service === service && s.span.name === name)
  await waitFor(() => has('wechat jscode2session', 'token-broker') && has('wechat getuserphonenumber', 'token-broker') && has('login commit', 'login-api') && has('login session', 'login-api'), { what: 'the login\'s spans from both services' })
    .catch(err => {
      throw new Error(`${(err as Error).message}; received: ${JSON.stringify(otlp.spans.map(s => [s.service, s.span.name, s.span.traceId === traceId]))}`)
    })
  const trace = otlp.spans.filter(s => s.span.traceId === traceId)
  t.comment(`the trace: ${[...new Set(trace.map(s => `${s.service} "${s.span.name}"`))].join(', ')}`)
  const byId = new Map(trace.map(s => [s.span.spanId, s]))
  const root = trace.filter(s => s.span.parentSpanId === parent)
  t.same(root.map(s => s.service), ['login-api'], 'the login-api\'s server span is the child of the caller\'s')
  for (const s of trace.filter(s => s.span.parentSpanId !== parent)) {
    t.ok(byId.has(s.span.parentSpanId ?? ''), `${s.service} "${s.span.name}" has its parent in the trace`)
  }
  // The broker's server span under a login-api client span: the traceparent went on to it.
  const brokerRoots = trace.filter(s => s.service === 'token-broker' && byId.get(s.span.parentSpanId ?? '')?.service === 'login-api')
  t.ok(brokerRoots.length >= 2, 'the broker\'s requests (code2session, the phone) are children of the login-api\'s calls')
  const code2session = trace.find(s => s.span.name === 'wechat jscode2session')
  t.match(code2session?.span.attributes, [{ key: 'wechat.api', value: { stringValue: 'jscode2session' } }], 'named by API')
  t.ok(code2session?.span.attributes?.some(a => a.key === 'wechat.errcode' && Number(a.value.intValue) === 0), 'with WeChat\'s errcode')
  for (const step of ['login claim', 'login code2session', 'login phone_exchange', 'login commit', 'login session']) {
    t.ok(has(step, 'login-api'), `the login-api's step: ${step}`)
  }

  const everything = JSON.stringify(otlp.spans)
  for (const s of secrets) t.notOk(everything.includes(s), `no exported span carries ${s === PHONE ? 'the phone number' : 'a secret, code or openid'}`)
  t.notOk(/access_token=(?!_)/.test(everything), 'no access_token in any URL')

  const fresh = await post(`${login}/api/user/thirdLogin`, await loginBody(sim, 'o-untraced'))
  t.equal(fresh.status, 200)
  // Each service exports in its own batches: wait for each side's spans, not one for the other.
  const isSecond = (s: { span: { traceId: string, name: string }, service: string }): boolean =>
    s.span.traceId !== traceId && s.service === 'login-api' && s.span.name === 'login commit'
  const second = await waitFor(() => otlp.spans.find(isSecond), { timeoutMs: 20_000, what: 'the second login\'s commit span' })
  t.pass('without a traceparent, a fresh trace')
  const joined = (): boolean => otlp.spans.some(s => s.span.traceId === second.span.traceId && s.service === 'token-broker')
  t.ok(await waitFor(joined, { timeoutMs: 20_000, what: 'the broker\'s spans in the second trace' }), 'which the broker joins')
})

t.test('services without an OTLP endpoint export nothing, not even to the SDK\'s default (localhost:4318)', async t => {
  const otlp = await receiver(t, 4318).catch(() => null)
  if (otlp === null) {
    t.comment('skipped: port 4318 is in use on this machine')
    return
  }
  const { sim, login } = await stack(t, { OTEL_SERVICE_NAME: 'untraced', OTEL_BSP_SCHEDULE_DELAY: '50' })
  const res = await post(`${login}/api/user/thirdLogin`, await loginBody(sim, 'o-no-tracing'), { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` })
  t.equal(res.status, 200)
  // What an exporter would have sent within its 50 ms delay has been sent by the time a second login answers.
  t.equal((await post(`${login}/api/user/thirdLogin`, await loginBody(sim, 'o-no-tracing-2'))).status, 200)
  t.equal(otlp.requests(), 0)
})
