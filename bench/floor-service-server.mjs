// The floor under a login's cost: what a service doing a login's calls must spend before any
// of our code runs. A framework-less node:http server that parses the JSON body, sends
// REDIS_COMMANDS commands to Redis one after another with node-redis (a one-line Lua script,
// EVALSHA, each writing its own key), calls each NEXT URL in order (a comma-separated list; a
// URL may repeat), and answers JSON. No validation, logging, metrics or crypto. DELAY_MS: a
// leaf's simulated upstream time (a timer, as in the WeChat simulator). The bench sets
// REDIS_COMMANDS to what the real service sent per login in the same run (INFO commandstats).
import http from 'node:http'
import { createClient } from 'redis'

const agent = new http.Agent({ keepAlive: true })
const next = (process.env.NEXT ?? '').split(',').filter(Boolean)
const delayMs = Number(process.env.DELAY_MS ?? 0)
const commands = Number(process.env.REDIS_COMMANDS ?? 0)
const scripts = Number(process.env.REDIS_SCRIPTS ?? 0)
const scriptCalls = String(process.env.SCRIPT_CALLS ?? 1)
const SCRIPT = "for i = 1, tonumber(ARGV[2]) do redis.call('SET', KEYS[1] .. i, ARGV[1], 'EX', 60) end return 1"
let redis
let sha
if (commands + scripts > 0) {
  redis = createClient({ url: process.env.REDIS_URL })
  redis.on('error', err => { console.error(`floor redis: ${err.message}`) })
  await redis.connect()
  sha = await redis.scriptLoad(SCRIPT)
}
let counter = 0

function call (url, body) {
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

async function handle (body) {
  const request = JSON.parse(body || '{}')
  const id = `floor:${process.pid}:${counter++}`
  for (let i = 0; i < commands; i++) await redis.set(`${id}:c${i}`, body, { EX: 60 })
  for (let i = 0; i < scripts; i++) await redis.evalSha(sha, { keys: [`${id}:s${i}:`], arguments: [body, scriptCalls] })
  const answers = []
  for (const url of next) answers.push(JSON.parse(await call(url, JSON.stringify(request))))
  if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
  return JSON.stringify({ ok: true, request, answers })
}

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
