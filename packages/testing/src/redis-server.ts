import type { ChildProcess } from 'node:child_process'
import { createConnection } from 'node:net'
import { freePort } from './ports.js'
import { stopProcess } from './stop-process.js'
import { spawnServer } from './server-spawn.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** The services' RedisConnection for this server (no credentials, no TLS, 1 s command timeout). */
  readonly connection: { url: string, tls: false, commandTimeoutMs: number }
  /** Stops the server (SIGTERM, waits for exit). Safe to call twice. */
  stop: () => Promise<void>
  /** Starts it again on the same port: empty, unless `args` ask for persistence (`--dir`, `--appendonly yes`). */
  start: () => Promise<void>
  /** Sends a signal to the running server: SIGSTOP freezes it (socket open, nothing answers), SIGCONT resumes it. */
  signal: (sig: NodeJS.Signals) => void
}

export interface RedisServerOptions {
  /** More redis-server arguments (e.g. ['--requirepass', 'x']). */
  args?: string[]
}

interface Teardownable {
  teardown: (fn: () => unknown) => void
}

/**
 * Starts a private redis-server on a free port, persisting nothing. Never touches the
 * machine's own Redis. With `t`, the server is stopped when the test ends.
 */
export async function startRedisServer (t?: Teardownable, opts: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    if (child !== undefined) return
    const proc = spawnServer(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
        '--loglevel',
        'warning',
        ...(opts.args ?? [])
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] }
    )
    child = proc
    proc.once('exit', () => {
      if (child === proc) child = undefined
    })
    await waitForPing(port, proc)
  }

  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === undefined) return
    child = undefined
    await stopProcess(proc)
  }

  await start()
  t?.teardown(stop)
  const url = `redis://127.0.0.1:${port}`
  const signal = (sig: NodeJS.Signals): void => {
    if (child === undefined) throw new Error('redis-server is not running')
    child.kill(sig)
  }
  return { port, url, connection: { url, tls: false, commandTimeoutMs: 1000 }, stop, start, signal }
}

async function waitForPing (port: number, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${proc.exitCode}`)
    if (await ping(port)) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  proc.kill('SIGKILL')
  throw new Error(`redis-server on port ${port} did not answer PING`)
}

async function ping (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    sock.setTimeout(500)
    sock.once('connect', () => sock.write('PING\r\n'))
    // NOAUTH: up, with a default user that needs a password (deploy/redis/users.acl.template).
    sock.once('data', d => {
      sock.destroy()
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()))
    })
    sock.once('error', () => {
      sock.destroy()
      resolve(false)
    })
    sock.once('timeout', () => {
      sock.destroy()
      resolve(false)
    })
  })
}
