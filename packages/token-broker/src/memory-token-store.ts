import type { RememberedFailure, TokenRecord, TokenStore } from './token-store.js'

/** Tokens in this process: the single-replica stand-in for the shared store. */
export class MemoryTokenStore implements TokenStore {
  readonly shared = false
  private readonly records = new Map<string, TokenRecord>()
  private seq = 0
  private readonly listeners: Array<(appid: string) => void> = []

  available (): boolean { return true }
  async get (appid: string): Promise<TokenRecord | null> { return this.records.get(appid) ?? null }
  async nextSeq (): Promise<number> {
    this.seq = Math.max(this.seq + 1, Date.now())
    return this.seq
  }

  async setIfNewer (appid: string, rec: TokenRecord): Promise<boolean> {
    const cur = this.records.get(appid)
    if (cur !== undefined && cur.seq > rec.seq) return false
    this.records.set(appid, rec)
    return true
  }

  async publish (appid: string): Promise<void> { for (const l of this.listeners) l(appid) }
  onUpdate (listener: (appid: string) => void): void { this.listeners.push(listener) }
  private readonly claims = new Map<string, number>()
  async claim (appid: string, name: string, ttlMs: number): Promise<boolean> {
    const now = Date.now()
    const key = `${appid}:${name}`
    if ((this.claims.get(key) ?? 0) > now) return false
    this.claims.set(key, now + ttlMs)
    return true
  }

  async releaseClaim (appid: string, name: string): Promise<void> { this.claims.delete(`${appid}:${name}`) }

  private readonly notes = new Map<string, { value: string, until: number }>()
  async note (appid: string, name: string, value: string, ttlMs: number): Promise<void> {
    this.notes.set(`${appid}:${name}`, { value, until: Date.now() + ttlMs })
  }

  async readNote (appid: string, name: string): Promise<string | null> {
    const n = this.notes.get(`${appid}:${name}`)
    return n !== undefined && n.until > Date.now() ? n.value : null
  }

  private readonly failures = new Map<string, { failure: RememberedFailure, until: number }>()
  async rememberFailure (appid: string, failure: RememberedFailure, ttlMs: number): Promise<void> {
    this.failures.set(appid, { failure, until: Date.now() + ttlMs })
  }

  async recentFailure (appid: string): Promise<RememberedFailure | null> {
    const f = this.failures.get(appid)
    return f !== undefined && f.until > Date.now() ? f.failure : null
  }

  private readonly counts = new Map<string, { used: number, until: number }>()
  async spend (appid: string, name: string, limit: number, ttlMs: number): Promise<{ used: number, allowed: boolean }> {
    const now = Date.now()
    const key = `${appid}:${name}`
    let c = this.counts.get(key)
    if (c === undefined || c.until <= now) {
      c = { used: 0, until: now + ttlMs }
      this.counts.set(key, c)
    }
    if (c.used >= limit) return { used: c.used, allowed: false }
    c.used += 1
    return { used: c.used, allowed: true }
  }
}

// Keeps the record only if none with a higher seq is stored; expires with the token. A stored
// seq too far ahead of the clock (ARGV[4]) was not written by a broker and does not count.
