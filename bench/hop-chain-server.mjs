// The floor under an idle login: the same hops (client -> login-api -> broker -> WeChat, twice:
// code2session and the phone number) between framework-less node:http servers that do no work but
// read, forward and answer, on kept-alive connections. What the machine's loopback and process
// wake-ups cost before any service code runs. NEXT: comma-separated URLs called in order;
// DELAY_MS: a leaf's simulated upstream time (a timer, as in the WeChat simulator).
import { postJson, serveJson } from './lib/plain-http.mjs'

const next = (process.env.NEXT ?? '').split(',').filter(Boolean)
const delayMs = Number(process.env.DELAY_MS ?? 0)

serveJson(async body => {
  let answer = body
  for (const url of next) answer = await postJson(url, answer)
  if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
  return answer
})
