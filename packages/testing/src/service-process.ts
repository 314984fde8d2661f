import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface ServiceProcessOptions {
  /** The child's whole environment (pass PATH on where it needs one): nothing leaks in from the parent's. */
  env: Record<string, string | undefined>
  cwd?: string
  /** Node flags before the script (--cpu-prof, --max-old-space-size=...). */
  nodeArgs?: string[]
  /** Each line the child writes, as it comes; without it, output is only kept (see `output`). */
  onLine?: (line: string) => void
  /** 'inherit' passes the child's stderr through (and keeps no output). */
  stderr?: 'capture' | 'inherit'
}

export interface ServiceProcess {
  child: ChildProcess
  /** Everything it wrote so far (stdout and stderr). */
  output: () => string
  exited: Promise<number | null>
  /** SIGTERM (or `signal`), then waits for the exit; nothing when it has already exited. */
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

/** A Node script (a service's dist/server.js, the simulator) as a child process. */
export function startServiceProcess (script: string, opts: ServiceProcessOptions): ServiceProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', opts.stderr === 'inherit' ? 'inherit' : 'pipe']
  })
  let out = ''
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue
    createInterface({ input: stream }).on('line', line => {
      out += line + '\n'
      opts.onLine?.(line)
    })
  }
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  return {
    child,
    output: () => out,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill(signal)
      await exited
    }
  }
}

/**
 * Waits until `ready()` holds for a started service, failing at once (with the end of its output)
 * when the process exits first, and with the same output when the time runs out: a service that
 * could not bind its port or read its configuration says why instead of timing out silently.
 */
export async function waitServiceReady (
  proc: ServiceProcess,
  ready: () => Promise<boolean>,
  { what, timeoutMs = 20_000 }: { what: string, timeoutMs?: number }
): Promise<void> {
  let exited = false
  proc.exited.then(() => { exited = true }, () => { exited = true })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited before it was ready: ${proc.output().slice(-2000)}`)
    if (await ready().catch(() => false)) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${proc.output().slice(-2000)}`)
}
