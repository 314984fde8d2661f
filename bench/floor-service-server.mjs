// The floor under a login's cost: what a service doing a login's calls must spend before any
// of our code runs. A framework-less node:http server that parses the JSON body, sends Redis
// REDIS_COMMANDS plain commands (SET) and REDIS_SCRIPTS scripts (EVALSHA, each making
// SCRIPT_CALLS calls inside Redis) one after another with node-redis, calls each NEXT URL in
// order (comma-separated; a URL may repeat) and answers JSON. No validation, logging, metrics
// or crypto. DELAY_MS: a leaf's simulated upstream time (a timer, as in the WeChat simulator).
// The bench sets the counts to what the real service sent per login in the same run (MONITOR).
import { createClient } from 'redis'
import { postJson, serveJson } from './lib/plain-http.mjs'

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

async function handle (body) {
  const request = JSON.parse(body || '{}')
  const id = `floor:${process.pid}:${counter++}`
  for (let i = 0; i < commands; i++) await redis.set(`${id}:c${i}`, body, { EX: 60 })
  for (let i = 0; i < scripts; i++) await redis.evalSha(sha, { keys: [`${id}:s${i}:`], arguments: [body, scriptCalls] })
  const answers = []
  for (const url of next) answers.push(JSON.parse(await postJson(url, JSON.stringify(request))))
  if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
  return JSON.stringify({ ok: true, request, answers })
}

serveJson(handle)
