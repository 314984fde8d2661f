import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/**
 * The signal to the server's process group and to every descendant: PostgreSQL puts each
 * backend in a session of its own (setsid), out of reach of a group signal.
 */
export function signalTree (proc: ChildProcess, sig: NodeJS.Signals): void {
  const pid = proc.pid as number
  // Found before anything is signalled: a killed postmaster's children are re-parented at once.
  const children = descendants(pid)
  try {
    process.kill(-pid, sig)
  } catch {}
  for (const child of children) {
    try {
      process.kill(child, sig)
    } catch {}
  }
}

function descendants (root: number): number[] {
  const parents = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The parent pid is the 4th field, after the command in parentheses (which may hold spaces).
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {}
  }
  const out: number[] = []
  const walk = (pid: number): void => {
    for (const c of parents.get(pid) ?? []) {
      out.push(c)
      walk(c)
    }
  }
  walk(root)
  return out
}
