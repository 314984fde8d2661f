import t from 'tap'
import http from 'node:http'
import { createUpstreamGot } from '../src/upstream-got.js'

// No nock in this file: its interceptor would sit in this process's HTTP client and open a new
// connection per request (see upstream-https.test.ts).

t.test('createUpstreamGot: lean requests carry query, headers and body, keep the connection, and never retry', async t => {
  const seen: Array<{ method?: string, url?: string, type?: string, body: string }> = []
  let connections = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], body })
      res.writeHead(req.url?.startsWith('/busy') === true ? 503 : 200, { 'content-type': 'application/json' })
      res.end('{"errcode":0,"openid":"o1"}')
    })
  }).on('connection', () => { connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const got = createUpstreamGot()

  for (let i = 0; i < 3; i++) {
    const body = await got.post(`${base}/wxa/business/getuserphonenumber`, { searchParams: { access_token: 'tok' }, json: { code: `c${i}` }, timeout: { request: 2000 } }).json()
    t.same(body, { errcode: 0, openid: 'o1' })
  }
  t.same(seen[2], { method: 'POST', url: '/wxa/business/getuserphonenumber?access_token=tok', type: 'application/json', body: '{"code":"c2"}' })
  t.equal(connections, 1, 'three calls on one kept-alive connection')

  const busy = await got(`${base}/busy`, { throwHttpErrors: false })
  t.equal(busy.statusCode, 503)
  t.equal(seen.filter(s => s.url === '/busy').length, 1, 'a 503 is not retried')
})
