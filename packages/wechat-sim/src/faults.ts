import type { Api } from './state.js'

export type Fault =
  | { kind: 'errcode', errcode: number }
  | { kind: 'status', status: number }
  | { kind: 'latency', latencyMs: number }
  | { kind: 'drop' }

interface Queued {
  fault: Fault
  remaining: number
}

/** Faults queued per API, each for its next N calls, taken in the order they were added. */
export class FaultQueue {
  private readonly queues = new Map<Api, Queued[]>()

  add (api: Api, fault: Fault, count: number): void {
    const q = this.queues.get(api) ?? []
    q.push({ fault, remaining: count })
    this.queues.set(api, q)
  }

  take (api: Api): Fault | undefined {
    const q = this.queues.get(api)
    const head = q?.[0]
    if (q === undefined || head === undefined) return undefined
    head.remaining -= 1
    if (head.remaining <= 0) q.shift()
    return head.fault
  }

  clear (): void {
    this.queues.clear()
  }
}
