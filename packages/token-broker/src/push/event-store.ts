import { ExpiringMap } from '@wxlogin/service-kit'
import type { PushMessage } from './push-message.js'

/** A stored push as a client receives it. */
export interface Delivered {
  id: string
  appid: string
  event: string
  openid: string
  create_time: number
  message: Record<string, unknown>
}

/**
 * WeChat's pushes, stored once each and delivered to each client at least once: every client has
 * its own cursor; a message received and not acknowledged within the visibility timeout is
 * delivered again (to any instance of that client); messages are kept for the retention.
 */
export interface WechatEventStore {
  /** Stored once: a resend of a stored push is a duplicate. Durable (REDIS_WAIT_REPLICAS) before it answers. */
  add: (push: PushMessage) => Promise<'stored' | 'duplicate'>
  /** Up to `max` for this client: its overdue unacknowledged ones first, then new ones. */
  receive: (client: string, max: number) => Promise<Delivered[]>
  /** How many of `ids` were outstanding for this client. */
  ack: (client: string, ids: string[]) => Promise<number>
}

/** How long a push's mark lives: WeChat resends within seconds; a day is ample. */
export const SEEN_TTL_MS = 86_400_000

export function delivered (id: string, push: Omit<PushMessage, 'dedupeId'>): Delivered {
  return {
    id,
    appid: push.appid,
    event: push.event,
    openid: push.openid,
    create_time: push.createTime,
    message: push.message
  }
}

interface Entry {
  id: string
  seq: number
  at: number
  push: PushMessage
}

/** One replica without Redis (pnpm start): the same semantics in this process. */
export class MemoryEventStore implements WechatEventStore {
  private readonly entries: Entry[] = []
  private readonly seen = new ExpiringMap<true>()
  private readonly cursors = new Map<string, { next: number, pending: Map<string, number> }>()
  private seq = 0

  constructor (
    private readonly visibilityMs: number,
    private readonly retentionMs: number,
    private readonly now: () => number = Date.now
  ) {}

  async add (push: PushMessage): Promise<'stored' | 'duplicate'> {
    const mark = `${push.appid}\0${push.dedupeId}`
    if (this.seen.get(mark) !== undefined) return 'duplicate'
    this.seen.set(mark, true, SEEN_TTL_MS)
    const at = this.now()
    this.seq++
    this.entries.push({ id: `${at}-${this.seq}`, seq: this.seq, at, push })
    while ((this.entries[0]?.at ?? at) < at - this.retentionMs) this.entries.shift()
    return 'stored'
  }

  async receive (client: string, max: number): Promise<Delivered[]> {
    const cursor = this.cursors.get(client) ?? { next: 0, pending: new Map<string, number>() }
    this.cursors.set(client, cursor)
    const now = this.now()
    const byId = new Map(this.entries.map(e => [e.id, e]))
    const out: Delivered[] = []
    for (const [id, deliveredAt] of cursor.pending) {
      if (out.length >= max) break
      const e = byId.get(id)
      if (e === undefined) cursor.pending.delete(id)
      else if (deliveredAt <= now - this.visibilityMs) {
        cursor.pending.set(id, now)
        out.push(delivered(id, e.push))
      }
    }
    for (const e of this.entries) {
      if (out.length >= max) break
      if (e.seq <= cursor.next) continue
      cursor.next = e.seq
      cursor.pending.set(e.id, now)
      out.push(delivered(e.id, e.push))
    }
    return out
  }

  async ack (client: string, ids: string[]): Promise<number> {
    const pending = this.cursors.get(client)?.pending
    let n = 0
    for (const id of ids) if (pending?.delete(id) === true) n++
    return n
  }
}
