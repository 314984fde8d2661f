// What the bench's framework-less servers share (hop-chain-server.mjs, floor-service-server.mjs):
// a JSON POST on a kept-alive connection, and a server that reads a body and answers what a
// handler returns. Plain node:http, nothing else, so they measure the machine, not a library.
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true })

/** POSTs `body` (JSON text) to `url`; the answer's text. */
export function postJson (url, body) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const req = http.request(url, { agent, method: 'POST', headers }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Listens on PORT (127.0.0.1): each request's body to `handle`, its JSON text answered (500 on a throw). */
export function serveJson (handle) {
  http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      handle(body).then(answer => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
        res.end(answer)
      }, err => {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(String(err.message))
      })
    })
  }).listen(Number(process.env.PORT), '127.0.0.1')
}
