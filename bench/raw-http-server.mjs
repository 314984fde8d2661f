// The load generator's headroom: node:http with no framework, answering the same body. If wrk
// drives this well past the bare Fastify route, the ratio against that route measures the
// servers, not wrk.
import http from 'node:http'

const body = JSON.stringify({ access_token: 'x'.repeat(Number(process.env.TOKEN_LENGTH ?? 128)), expires_in: 7000, expires_at: new Date(Date.now() + 7_000_000).toISOString() })
http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}).listen(Number(process.env.PORT), '127.0.0.1')
