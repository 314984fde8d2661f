import type { ChildProcess } from 'node:child_process'

/**
 * Stops a server process and waits for its exit: SIGCONT first (a frozen server would never act
 * on SIGTERM), then SIGTERM, and SIGKILL if it is still there after `killAfterMs`. `send`
 * delivers a signal (to the process alone, or to its whole group).
 */
export async function stopProcess (
  proc: ChildProcess,
  send: (sig: NodeJS.Signals) => void = sig => {
    proc.kill(sig)
  },
  killAfterMs = 15_000
): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => send('SIGKILL'), killAfterMs)
    proc.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    send('SIGCONT')
    send('SIGTERM')
  })
}
