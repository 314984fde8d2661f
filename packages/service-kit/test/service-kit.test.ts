import t from 'tap'
import Fastify from 'fastify'
import { createConnection } from 'node:net'
import { Writable } from 'node:stream'
import { Registry } from 'prom-client'
import { ConfigError, createSecretMatcher, errorFields, loggerOptions, maskMobilesInLine, scrubText, SingleFlight, EnvReader, httpMetrics, installErrorHandling, maskPhone, registerHealthRoutes, ServiceError, shedWhileClosing } from '../src/index.js'

t.test('EnvReader', async t => {
  const r = new EnvReader({ A: ' 5 ', B: 'yes', C: '', U: 'https://x.example/', J: '{"a":1}' })
  t.equal(r.int('A', 1), 5)
  t.equal(r.int('MISSING', 7), 7)
  t.equal(r.bool('B', false), true)
  t.equal(r.string('C', 'fallback'), 'fallback', 'empty counts as unset')
  t.equal(r.url('U'), 'https://x.example', 'trailing slash dropped')
  t.same(r.json('J'), { a: 1 })
  t.throws(() => r.string('NOPE'), new ConfigError('NOPE', 'is required'))
  t.throws(() => new EnvReader({ B: 'perhaps' }).bool('B', false), /B must be true or false/)
})

t.test('ServiceError and the error handler give the contract shape', async t => {
  const app = Fastify()
  installErrorHandling(app)
  app.get('/boom', async () => { throw new Error('secret=abc in a library message') })
  app.get('/known', async () => { throw new ServiceError('rate_limited', 'Slow down.', 429, { wechatErrcode: 45011, headers: { 'retry-after': '7' } }) })
  app.post('/body', { schema: { body: { type: 'object', required: ['x'] } } }, async () => ({}))
  registerHealthRoutes(app, { ok: async () => ({ ok: true }), bad: async () => ({ ok: false, reason: 'down' }) })
  const boom = await app.inject('/boom')
  t.equal(boom.statusCode, 500)
  t.same(boom.json(), { error: 'internal_error', message: 'Internal error.' })
  const known = await app.inject('/known')
  t.same([known.statusCode, known.headers['retry-after'], known.json()], [429, '7', { error: 'rate_limited', message: 'Slow down.', wechat_errcode: 45011 }])
  const body = await app.inject({ method: 'POST', url: '/body', payload: {} })
  t.equal(body.json().error, 'invalid_body')
  const nf = await app.inject('/nowhere?token=x')
  t.same(nf.json(), { error: 'not_found', message: 'No route GET /nowhere.' })
  t.equal((await app.inject('/healthz')).statusCode, 200)
  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { error: 'not_ready', message: 'Not ready: bad (down).' })

  const soft = Fastify()
  registerHealthRoutes(soft, { store: async () => ({ ok: true, degraded: 'serving from memory' }), other: async () => ({ ok: true }) })
  const degraded = await soft.inject('/readyz')
  t.equal(degraded.statusCode, 200, 'degraded still serves')
  t.same(degraded.json(), { status: 'degraded', checks: { store: 'degraded: serving from memory', other: 'ok' } })
})

t.test('helpers', async t => {
  t.equal(maskPhone('13812348000'), '138****8000')
})

t.test('createSecretMatcher finds the matching entry, or null', async t => {
  const match = createSecretMatcher([{ secret: 'token-a', value: 'a' }, { secret: 'token-b', value: 'b' }])
  t.equal(match('token-b'), 'b')
  t.equal(match('token-a'), 'a')
  t.equal(match('token-c'), null)
  t.equal(match(''), null)
})

t.test('httpMetrics records method, route template and status', async t => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(httpMetrics, { registry })
  app.get('/items/:id', async () => ({ ok: true }))
  await app.ready()
  for (const id of ['1', '2', '3']) await app.inject(`/items/${id}`)
  await app.inject('/missing')
  const m = await registry.getSingleMetric('http_request_duration_seconds')?.get()
  const count = (route: string, status: string): number | undefined => m?.values.find(v =>
    (v as { metricName?: string }).metricName === 'http_request_duration_seconds_count' && v.labels.route === route && v.labels.status_code === status)?.value
  t.equal(count('/items/:id', '200'), 3, 'the template, not the raw URL')
  t.equal(count('unmatched', '404'), 1)
})

t.test('shedWhileClosing: a request arriving during the drain gets a 503 in the contract shape', async t => {
  const app = Fastify({ return503OnClosing: false })
  installErrorHandling(app)
  // Runs before the gate's hook: tells the test when the late request has reached the server.
  let lateSeen: () => void = () => {}
  const lateArrived = new Promise<void>(resolve => { lateSeen = resolve })
  app.addHook('onRequest', async (request) => { if (request.url === '/fast') lateSeen() })
  shedWhileClosing(app)
  let release: () => void = () => {}
  let started: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  const arrived = new Promise<void>(resolve => { started = resolve })
  app.get('/slow', async () => { started(); await held; return { done: true } })
  app.get('/fast', async () => ({ ok: true }))
  // Registered after shedWhileClosing's own preClose hook, so it runs once the gate is shut.
  let draining: () => void = () => {}
  const drainStarted = new Promise<void>(resolve => { draining = resolve })
  app.addHook('preClose', async () => { draining() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  // One connection, busy with /slow, so the drain cannot reap it as idle; the second request
  // is written on it after the close has begun.
  const socket = createConnection({ port, host: '127.0.0.1' })
  let received = ''
  socket.on('data', d => { received += d.toString() })
  const ended = new Promise<void>(resolve => socket.once('close', () => resolve()))
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await arrived
  const closed = app.close()
  await drainStarted
  socket.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n')
  await lateArrived
  release()
  await ended
  await closed
  const responses = received.split(/(?=HTTP\/1\.1 )/)
  t.match(responses[0], /^HTTP\/1\.1 200[\s\S]*\{"done":true\}/, 'the in-flight request finished')
  t.match(responses[1], /^HTTP\/1\.1 503/, 'the late one was shed')
  t.match(responses[1], /connection: close/i)
  t.match(responses[1], /\{"error":"shutting_down","message":"This instance is shutting down; retry."\}/)
})

t.test('access log: errors and slow requests always, the rest only as sampled; never a query string or header', async t => {
  const { Writable } = await import('node:stream')
  const { createServiceApp, readAccessLog } = await import('../src/index.js')
  const build = async (accessLog: { sampleRate: number, slowMs: number }): Promise<{ app: import('fastify').FastifyInstance, lines: () => Array<Record<string, unknown>> }> => {
    const chunks: string[] = []
    const stream = new Writable({ write (c: Buffer, _e, cb) { chunks.push(c.toString()); cb() } })
    const { loggerOptions } = await import('../src/index.js')
    const app = await createServiceApp({ name: 'test', logLevel: 'info', logger: loggerOptions('info', 'test', stream), accessLog })
    app.get('/ok', async () => ({ ok: true }))
    app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 30)); return { ok: true } })
    app.get('/fail', async () => { throw new ServiceError('upstream_unavailable', 'Down.', 503) })
    t.teardown(() => app.close())
    return { app, lines: () => chunks.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>) }
  }
  const quiet = await build({ sampleRate: 0, slowMs: 20 })
  await quiet.app.inject({ url: '/ok?code=secret-login-code', headers: { authorization: 'Bearer abc' } })
  t.same(quiet.lines().filter(l => l.statusCode !== undefined), [], 'a fast 200 is not logged')
  await quiet.app.inject('/nope?code=secret-login-code')
  await quiet.app.inject('/fail')
  await quiet.app.inject('/slow')
  const logged = quiet.lines().filter(l => l.statusCode !== undefined)
  t.match(logged, [
    { level: 30, msg: 'request completed', statusCode: 404, url: '/nope' },
    { level: 50, msg: 'request failed', statusCode: 503, url: '/fail', route: '/fail' },
    { level: 40, msg: 'slow request', statusCode: 200, url: '/slow' }
  ])
  t.notMatch(JSON.stringify(quiet.lines()), /secret-login-code|Bearer/, 'no query string, no header')
  const all = await build({ sampleRate: 1, slowMs: 1000 })
  await all.app.inject('/ok')
  t.match(all.lines().filter(l => l.statusCode !== undefined), [{ msg: 'request completed', statusCode: 200 }], 'sample rate 1 logs every request')
  t.same(readAccessLog(new EnvReader({})), { sampleRate: 0, slowMs: 1000 })
  t.same(readAccessLog(new EnvReader({ LOG_ACCESS_SAMPLE_RATE: '0.01', LOG_SLOW_REQUEST_MS: '250' })), { sampleRate: 0.01, slowMs: 250 })
  t.throws(() => readAccessLog(new EnvReader({ LOG_ACCESS_SAMPLE_RATE: '2' })), /LOG_ACCESS_SAMPLE_RATE must be a number from 0 to 1/)
})

t.test('errorFields: a library error\'s name, code, message, stack and cause, with no secret of a URL', async t => {
  const gotLike = Object.assign(new Error('Timeout awaiting \'request\' for 5000ms: GET https://api.weixin.qq.com/sns/jscode2session?appid=wx1&secret=s3cr3t&js_code=c0de'), { name: 'TimeoutError', code: 'ETIMEDOUT' })
  const wrapped = new ServiceError('upstream_unavailable', 'WeChat is unavailable.', 503, { cause: gotLike })
  t.equal(wrapped.cause, gotLike, 'the cause is kept')
  t.same(wrapped.toJSON(), { error: 'upstream_unavailable', message: 'WeChat is unavailable.' }, 'and never answered')
  const fields = errorFields(wrapped)
  t.match(fields, { name: 'ServiceError', cause: { name: 'TimeoutError', code: 'ETIMEDOUT', message: /jscode2session\?\[query removed\]/ } })
  t.notMatch(JSON.stringify(fields), /s3cr3t|c0de/)
  t.match(fields.stack, /ServiceError/)
  t.equal(scrubText('redis://user:pa55@h:1 Bearer abc.def access_token=x'), 'redis://[credentials removed]@h:1 Bearer [removed] access_token=[removed]')
  const port = Object.assign(new Error('listen EADDRINUSE: address already in use 0.0.0.0:3001'), { code: 'EADDRINUSE' })
  t.match(errorFields(port), { name: 'Error', code: 'EADDRINUSE', message: /EADDRINUSE/ }, 'a port clash says what it is')
})

t.test('SingleFlight: one run per key, shared by concurrent callers', async t => {
  const flights = new SingleFlight<string, number>()
  let runs = 0
  let release: (v: number) => void = () => {}
  const gate = new Promise<number>(resolve => { release = resolve })
  const work = async (): Promise<number> => { runs++; return await gate }
  const a = flights.run('k', work)
  const b = flights.run('k', work)
  t.ok(flights.has('k'))
  release(7)
  t.same(await Promise.all([a, b]), [7, 7])
  t.equal(runs, 1)
  t.notOk(flights.has('k'), 'forgotten once settled')
  await t.rejects(flights.run('k', async () => { throw new Error('boom') }), /boom/)
  t.equal(await flights.run('k', async () => 8), 8, 'a failure is not remembered')
})

t.test('every log line has mobile numbers masked, whatever path brought them', async t => {
  t.equal(maskMobilesInLine('{"msg":"failed for 13800138000","n":"+8613912345678","time":1795564359231}'), '{"msg":"failed for 138****8000","n":"+86139****5678","time":1795564359231}')
  t.equal(maskMobilesInLine('order 202611240001234 id 12800138000'), 'order 202611240001234 id 12800138000', 'longer runs and non-mobile prefixes are left alone')
  let written = ''
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { written += chunk.toString(); cb() } })
  const app = Fastify({ logger: loggerOptions('info', 'test', stream) })
  app.log.info({ detail: 'WeChat said 13800138000 is bound elsewhere' }, 'a message naming 13700137000')
  await app.close()
  t.notMatch(written, /13800138000|13700137000/)
  t.match(written, /138\*\*\*\*8000/)
})
