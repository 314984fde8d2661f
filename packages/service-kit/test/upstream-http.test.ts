import t, { type Test } from 'tap'
import http from 'node:http'
import { createUpstream, UpstreamError } from '../src/upstream-http.js'

// The real client against a real server. No nock in this file: its interceptor would sit in
// this process's HTTP client and open a new connection per request (upstream-https.test.ts).

async function serve (t: Test, handler: http.RequestListener): Promise<{ base: string, connections: () => number }> {
  let connections = 0
  const server = http.createServer(handler).on('connection', () => { connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, connections: () => connections }
}

type Failure = UpstreamError | undefined
async function failure (p: Promise<unknown>): Promise<Failure> {
  try {
    await p
    return undefined
  } catch (err) {
    return err as UpstreamError
  }
}

t.test('sends query, headers and JSON body, answers any status as it is, on one kept-alive connection', async t => {
  const seen: Array<{ method?: string, url?: string, type?: string, auth?: string, body: string }> = []
  const { base, connections } = await serve(t, (req, res) => {
    let body = ''
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], auth: req.headers.authorization, body })
      res.writeHead(req.url?.startsWith('/busy') === true ? 503 : 200, { 'content-type': 'application/json' })
      res.end('{"errcode":0,"openid":"o1"}')
    })
  })
  const upstream = createUpstream()
  for (let i = 0; i < 3; i++) {
    const res = await upstream({
      method: 'POST',
      url: `${base}/wxa/business/getuserphonenumber`,
      searchParams: { access_token: 'tok' },
      headers: { authorization: 'Bearer client' },
      json: { code: `c${i}` },
      timeoutMs: 2000
    })
    t.same(res, { statusCode: 200, body: '{"errcode":0,"openid":"o1"}' })
  }
  t.same(seen[2], {
    method: 'POST',
    url: '/wxa/business/getuserphonenumber?access_token=tok',
    type: 'application/json',
    auth: 'Bearer client',
    body: '{"code":"c2"}'
  })
  t.equal(connections(), 1, 'three calls on one kept-alive connection')
  const busy = await upstream({ method: 'GET', url: `${base}/busy`, timeoutMs: 2000 })
  t.equal(busy.statusCode, 503, 'a 503 is an answer, not an error')
  t.equal(seen.filter(s => s.url === '/busy').length, 1, 'and is never retried')
})

t.test('a timeout, a refused connection, a cut answer and an oversized one: codes, and no URL or secret', async t => {
  const { base } = await serve(t, (req, res) => {
    if (req.url?.startsWith('/slow') === true) return // never answers
    if (req.url?.startsWith('/cut') === true) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
      res.write('{"errcode":')
      setImmediate(() => res.destroy())
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(`"${'x'.repeat(5000)}"`)
  })
  const upstream = createUpstream({}, 1000)
  const secret = { searchParams: { access_token: 'SECRET-TOKEN' }, headers: { authorization: 'Bearer SECRET-CLIENT' } }

  const started = Date.now()
  const slow = await failure(upstream({ method: 'GET', url: `${base}/slow`, timeoutMs: 100, ...secret }))
  t.ok(slow instanceof UpstreamError && slow.timeout, 'the timeout says so')
  t.equal(slow?.code, 'ETIMEDOUT')
  t.ok(Date.now() - started < 5000, 'and comes at its time, not the server\'s')

  const refused = await failure(upstream({ method: 'GET', url: 'http://127.0.0.1:1/x', timeoutMs: 2000, ...secret }))
  t.equal(refused?.code, 'ECONNREFUSED')
  t.equal(refused?.timeout, false)

  const cut = await failure(upstream({ method: 'GET', url: `${base}/cut`, timeoutMs: 2000, ...secret }))
  t.equal(cut?.code, 'ECONNRESET', 'an answer cut before its end is not an answer')

  const large = await failure(upstream({ method: 'GET', url: `${base}/large`, timeoutMs: 2000, ...secret }))
  t.equal(large?.code, 'ERR_ANSWER_TOO_LARGE', 'past the bound, the answer is dropped')

  const bad = await failure(upstream({ method: 'GET', url: 'ftp://127.0.0.1/x', timeoutMs: 2000 }))
  t.equal(bad?.code, 'ERR_INVALID_PROTOCOL')

  for (const e of [slow, refused, cut, large]) {
    const text = `${e?.message} ${e?.stack} ${JSON.stringify(e)}`
    t.notMatch(text, /SECRET|127\.0\.0\.1:\d+\/|access_token/, `${e?.code}: nothing of the request in the error`)
  }
})
