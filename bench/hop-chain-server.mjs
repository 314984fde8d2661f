// The floor under an idle login: the same hops (client -> login-api -> broker -> WeChat, twice:
// code2session and the phone number) between framework-less node:http servers that do no work but
// read, forward and answer, on kept-alive connections. What the machine's loopback and process
// wake-ups cost before any service code runs. NEXT: comma-separated URLs called in order;
// DELAY_MS: a leaf's simulated upstream time (a timer, as in the WeChat simulator).
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true })
const next = (process.env.NEXT ?? '').split(',').filter(Boolean)
const delayMs = Number(process.env.DELAY_MS ?? 0)

function call (url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.end(body)
  })
}

http.createServer((req, res) => {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', chunk => { body += chunk })
  req.on('end', async () => {
    let answer = body
    for (const url of next) answer = await call(url, answer)
    if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
    res.end(answer)
  })
}).listen(Number(process.env.PORT), '127.0.0.1')
