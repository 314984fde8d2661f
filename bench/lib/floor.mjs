// The floor a login's cost is judged against (bench/floor-service-server.mjs): the same hops
// and as many Redis commands and scripts per login as the real services sent in the same run,
// in framework-less processes.
import { spawn } from 'node:child_process'
import { freePort } from '../../packages/testing/dist/ports.js'
import { waitFor } from '../../packages/testing/dist/wait.js'
import { spawnNode } from './harness.mjs'

/** Background commands (health probes, the bench's own reads) that no login sends. */
const NOT_LOGIN = new Set(['PING', 'INFO', 'CLIENT', 'HELLO', 'SELECT', 'MONITOR'])

/**
 * What a service sends Redis per login, read with MONITOR (started here, read by `perLogin`
 * after the logins): commands sent (scripts among them) and the calls the scripts make inside
 * Redis. (INFO commandstats counts a script's inner calls as commands of their own.)
 */
export async function monitorRedis (port) {
  const monitor = spawn('redis-cli', ['-p', String(port), 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let text = ''
  monitor.stdout.setEncoding('utf8')
  monitor.stdout.on('data', chunk => { text += chunk })
  await waitFor(() => text.startsWith('OK'), { what: 'MONITOR' })
  return {
    perLogin (logins) {
      monitor.kill()
      let sent = 0
      let scripts = 0
      let inner = 0
      for (const line of text.split('\n')) {
        const m = /^\d+\.\d+ \[\d+ (\S+)\] "([^"]+)"/.exec(line)
        if (m === null || NOT_LOGIN.has(m[2].toUpperCase())) continue
        if (m[1] === 'lua') inner++
        else {
          sent++
          if (/^EVAL/i.test(m[2])) scripts++
        }
      }
      const per = n => Math.round(n / logins * 100) / 100
      return { commands: per(sent), scripts: per(scripts), innerCalls: per(inner) }
    }
  }
}

/**
 * The floor's processes: WeChat (a leaf waiting `delayMs`), the broker (called twice per login:
 * code2session and the phone number, each going on to WeChat) and the login-api. Each sends
 * its share of Redis commands per request to its own server. Returns the pids and the entry URL.
 */
export async function floorChain ({ delayMs, brokerRedisUrl, apiRedisUrl, brokerWork, apiWork }) {
  const start = async (env) => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const child = spawnNode('bench/floor-service-server.mjs', { PORT: String(port), ...env })
    const body = '{}'
    const answers = async () => { try { return (await fetch(url, { method: 'POST', body })).ok } catch { return false } }
    await waitFor(answers, { what: 'floor process' })
    return { url, pid: child.pid }
  }
  const wechat = await start({ DELAY_MS: String(delayMs) })
  // Per request: the broker's share of a login is half (two calls a login).
  const env = (work, share) => ({
    REDIS_COMMANDS: String(Math.round((work.commands - work.scripts) * share)),
    REDIS_SCRIPTS: String(Math.round(work.scripts * share)),
    SCRIPT_CALLS: String(Math.max(1, Math.round(work.innerCalls / Math.max(work.scripts, 1))))
  })
  const broker = await start({ NEXT: wechat.url, REDIS_URL: brokerRedisUrl, ...env(brokerWork, 0.5) })
  const api = await start({ NEXT: `${broker.url},${broker.url}`, REDIS_URL: apiRedisUrl, ...env(apiWork, 1) })
  return { url: api.url, brokerPid: broker.pid, apiPid: api.pid }
}
