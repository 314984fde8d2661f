import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort, startServiceProcess, type ServiceProcess } from '@wxlogin/testing'

export const root = fileURLToPath(new URL('..', import.meta.url))

export type Running = ServiceProcess

/** A node script from the repository root as a child process, stopped when the test ends. */
export function run (t: Test, script: string, env: Record<string, string>): Running {
  const proc = startServiceProcess(script, { cwd: root, env: { PATH: process.env.PATH ?? '', ...env } })
  t.teardown(async () => { await proc.stop() })
  return proc
}

export async function stackPorts (): Promise<Record<'SIM_PORT' | 'BROKER_PORT' | 'BROKER_METRICS_PORT' | 'LOGIN_PORT' | 'LOGIN_METRICS_PORT' | 'PUSH_PORT', string>> {
  return {
    PUSH_PORT: String(await freePort()),
    SIM_PORT: String(await freePort()),
    BROKER_PORT: String(await freePort()),
    BROKER_METRICS_PORT: String(await freePort()),
    LOGIN_PORT: String(await freePort()),
    LOGIN_METRICS_PORT: String(await freePort())
  }
}

/**
 * A command-line tool the deployment checks need (promtool, docker-compose). Locally a missing
 * tool skips the check; in CI, which installs them, a missing tool fails it.
 */
export function tool (t: Test, name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
  if (!found) {
    if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') t.fail(`${name} is not installed (.ci/run installs it)`)
    else t.comment(`skipped: ${name} is not installed`)
  }
  return found
}
