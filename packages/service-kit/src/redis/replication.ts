import calculateSlot from 'cluster-key-slot'
import { RedisReplicationError } from './commands.js'

/** How long a WAIT may hold a connection: replication on a healthy network takes about a millisecond. */
export const WAIT_TIMEOUT_MS = 250

/** How long a master's replica count is trusted before it is read again. */
const COUNT_LIFE_MS = 2000

type Send = (key: string, args: string[]) => Promise<unknown>

/**
 * WAIT after a write that must survive a failover, costing no round trip of its own: it is
 * sent in the same tick as the write it covers, so node-redis sends both in one write and Redis
 * answers them together (a WAIT covers every earlier write on its connection), and the writes of
 * one tick share it. The
 * replica count it needs is the one last read; when that is old, INFO goes out in the same
 * write, and the answer is judged by the fresh count.
 */
export class ReplicaWaiter {
  /** Replicas connected to the master of a slot (or of the one master), as last read. */
  private readonly counts = new Map<number | 'master', { count: number, until: number }>()

  constructor (
    private readonly wanted: number,
    private readonly cluster: boolean,
    private readonly send: Send
  ) {}

  /** WAITs asked for in this tick, one per slot (or the one master): sent once, at its end. */
  private readonly pending = new Map<number | 'master', Promise<void>>()

  /**
   * Resolves once the writes issued before it on `key`'s connection are on the replicas. The
   * calls of one tick share one WAIT, sent after all of them (a microtask: before node-redis
   * writes the tick's commands), so a login's writes issued together wait once, not once each.
   */
  async wait (key: string): Promise<void> {
    if (this.wanted === 0) return
    const scope = this.cluster ? calculateSlot(key) : 'master'
    let shared = this.pending.get(scope)
    if (shared === undefined) {
      shared = new Promise<void>((resolve, reject) => {
        queueMicrotask(() => {
          this.pending.delete(scope)
          this.waitNow(key, scope).then(resolve, reject)
        })
      })
      this.pending.set(scope, shared)
    }
    await shared
  }

  private async waitNow (key: string, scope: number | 'master'): Promise<void> {
    const known = this.counts.get(scope)
    const fresh = known !== undefined && known.until >= Date.now()
    // Both issued now, before any await: they ride in the caller's write.
    const info = fresh ? undefined : this.send(key, ['INFO', 'replication'])
    const guess = Math.min(this.wanted, known?.count ?? this.wanted)
    const waited = guess === 0 ? Promise.resolve(0) : this.send(key, ['WAIT', String(guess), String(WAIT_TIMEOUT_MS)])
    const [text, acked] = await Promise.all([info, waited])
    let count = known?.count ?? 0
    if (text !== undefined) {
      count = Number(/connected_slaves:(\d+)/.exec(String(text))?.[1] ?? 0)
      this.counts.set(scope, { count, until: Date.now() + COUNT_LIFE_MS })
    }
    const need = Math.min(this.wanted, count)
    let got = Number(acked)
    // A replica attached since the last count: wait for it too (rare, one more round trip).
    if (got < need && guess < need) got = Number(await this.send(key, ['WAIT', String(need), String(WAIT_TIMEOUT_MS)]))
    if (got < need) {
      this.counts.delete(scope)
      throw new RedisReplicationError(need, got)
    }
  }
}
