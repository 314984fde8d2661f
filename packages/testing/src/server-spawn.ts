import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'

let setprivHere: boolean | undefined

/** Whether util-linux's setpriv is installed (Linux; Essential on Debian): asked once. */
function hasSetpriv (): boolean {
  setprivHere ??= spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0
  return setprivHere
}

/**
 * A test's server (redis-server, redis-sentinel, postgres, mariadbd) that dies with the process
 * that started it. A test's teardown stops its servers, even when the test fails; a test process
 * that is itself killed, or crashes before its teardowns run, would leave them running. With
 * `setpriv --pdeathsig` the kernel SIGKILLs the server when its parent goes. setpriv execs the
 * server, so the pid (and every signal a test sends: SIGSTOP, SIGKILL) is the server's own.
 */
export function spawnServer (command: string, args: string[], options: SpawnOptions): ChildProcess {
  if (!hasSetpriv()) return spawn(command, args, options)
  return spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', command, ...args], options)
}
