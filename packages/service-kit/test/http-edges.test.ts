import t, { type Test } from 'tap'
import { connect } from 'node:net'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { createServiceApp, loggerOptions, registerHealthRoutes } from '../src/index.js'

// What reaches a service before its routes do: a URL that does not decode, bytes that are not
// HTTP, a client that never finishes its request. Each is answered in the contract's shape,
// echoes nothing, and lets go of the socket within the configured time.

class Lines extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  override _write (chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const l of chunk.toString().split('\n').filter(Boolean)) this.lines.push(JSON.parse(l) as Record<string, unknown>)
    cb()
  }
}

async function serve (t: Test, requestTimeoutMs = 1000): Promise<{ port: number, logs: Lines }> {
  const logs = new Lines()
  const app = await createServiceApp({ name: 'edge', logLevel: 'info', logger: loggerOptions('info', 'edge', logs), http: { requestTimeoutMs } })
  app.get('/cgi-bin/token', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { port: (app.server.address() as { port: number }).port, logs }
}

/** Sends raw bytes, returns everything the server writes until it closes. */
async function raw (port: number, bytes: string, { end = true } = {}): Promise<{ text: string, ms: number }> {
  const started = Date.now()
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(bytes)
      if (end) socket.end()
    })
    let text = ''
    socket.on('data', d => { text += d.toString() })
    socket.on('close', () => { resolve({ text, ms: Date.now() - started }) })
    socket.on('error', reject)
  })
}

const SECRET = 'the-client-token-0123456789abcdef'

t.test('a URL fastify cannot decode: 400 in the contract shape, the query never echoed, one log line', async t => {
  const { port, logs } = await serve(t)
  const res = await fetch(`http://127.0.0.1:${port}/cgi-bin/tok%ZZen?grant_type=client_credential&secret=${SECRET}`)
  t.equal(res.status, 400)
  const body = await res.text()
  t.same(JSON.parse(body), { error: 'bad_url', message: 'The request URL is malformed.' })
  t.notMatch(body, SECRET)
  t.ok(logs.lines.some(l => l.msg === 'request refused before routing'), 'logged')
  t.notMatch(JSON.stringify(logs.lines), SECRET, 'and the log has no secret either')
})

t.test('bytes that are not HTTP: Node\'s parser error in the contract shape', async t => {
  const { port, logs } = await serve(t)
  const { text } = await raw(port, `GET /cgi-bin/token?secret=${SECRET} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n`)
  t.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(text, /content-type: application\/json/i)
  t.same(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), { error: 'bad_request', message: 'The request could not be parsed as HTTP.' })
  t.notMatch(text, SECRET)
  t.ok(logs.lines.some(l => l.msg === 'client error: request refused by the HTTP parser'))
})

t.test('a stalled request body is answered 408 and the socket closed within the request timeout', async t => {
  const { port } = await serve(t, 1000)
  const { text, ms } = await raw(port, 'POST /cgi-bin/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"', { end: false })
  t.match(text, /^HTTP\/1\.1 408 /)
  t.ok(ms < 2500, `closed after ${ms} ms (REQUEST_TIMEOUT_SECONDS=1), not Node's 30 s checking interval later`)
})

t.test('/readyz reuses its checks\' answer for a second: the public port cannot make it call a dependency per request', async t => {
  const app = Fastify()
  let calls = 0
  registerHealthRoutes(app, { broker: async () => { calls++; return { ok: true } } })
  await Promise.all(Array.from({ length: 50 }, async () => await app.inject('/readyz')))
  for (let i = 0; i < 50; i++) await app.inject('/readyz')
  t.equal(calls, 1, '100 requests, one check')
  await new Promise(resolve => setTimeout(resolve, 1050))
  await app.inject('/readyz')
  t.equal(calls, 2, 'asked again after a second')
})

t.test('an empty body with content-type: application/json (what wx.request sends without data) is no body, not a 400', async t => {
  const app = await createServiceApp({ name: 'edge', logLevel: 'silent' })
  app.post('/logout', async (request) => ({ body: request.body ?? null }))
  app.post('/needs', { schema: { body: { type: 'object', required: ['x'] } } }, async () => ({ ok: true }))
  t.teardown(() => app.close())
  const empty = await app.inject({ method: 'POST', url: '/logout', headers: { 'content-type': 'application/json' }, payload: '' })
  t.equal(empty.statusCode, 200)
  t.same(empty.json(), { body: null })
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { 'content-type': 'application/json' }, payload: '{"a":1}' })).json().body.a, 1, 'a body still parses')
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1}}' })).statusCode, 400, 'prototype poisoning still refused')
  t.equal((await app.inject({ method: 'POST', url: '/needs', headers: { 'content-type': 'application/json' }, payload: '' })).statusCode, 400, 'a route that needs a body still says so')
})
