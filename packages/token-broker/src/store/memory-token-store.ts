import { ExpiringMap } from '@wxlogin/service-kit'
import type { RememberedFailure, TokenRecord, TokenStore } from './token-store.js'

/** Tokens in this process: the single-replica stand-in for the shared store. */
export class MemoryTokenStore implements TokenStore {
  readonly shared = false
  private readonly records = new Map<string, TokenRecord>()
  private seq = 0
  private readonly listeners: Array<(appid: string) => void> = []

  available (): boolean {
    return true
  }

  async get (appid: string): Promise<TokenRecord | null> {
    return this.records.get(appid) ?? null
  }

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

  async publish (appid: string): Promise<void> {
    for (const l of this.listeners) l(appid)
  }

  onUpdate (listener: (appid: string) => void): void {
    this.listeners.push(listener)
  }

  // Each kept for its own life and then dropped (one code2session answer a login, say): a map
  // that only grew would hold every code the process ever saw.
  private readonly claims = new ExpiringMap<true>()
  async claim (appid: string, name: string, ttlMs: number): Promise<boolean> {
    const key = `${appid}:${name}`
    if (this.claims.get(key) !== undefined) return false
    this.claims.set(key, true, ttlMs)
    return true
  }

  async releaseClaim (appid: string, name: string): Promise<void> {
    this.claims.delete(`${appid}:${name}`)
  }

  private readonly notes = new ExpiringMap<string>()
  async note (appid: string, name: string, value: string, ttlMs: number): Promise<void> {
    this.notes.set(`${appid}:${name}`, value, Math.max(1, ttlMs))
  }

  async readNote (appid: string, name: string): Promise<string | null> {
    return this.notes.get(`${appid}:${name}`) ?? null
  }

  private readonly failures = new ExpiringMap<RememberedFailure>()
  async rememberFailure (appid: string, failure: RememberedFailure, ttlMs: number): Promise<void> {
    this.failures.set(appid, failure, ttlMs)
  }

  async recentFailure (appid: string): Promise<RememberedFailure | null> {
    return this.failures.get(appid) ?? null
  }

  private readonly counts = new ExpiringMap<{ used: number }>()
  async spend (appid: string, name: string, limit: number, ttlMs: number): Promise<{ used: number, allowed: boolean }> {
    const key = `${appid}:${name}`
    let c = this.counts.get(key)
    if (c === undefined) {
      c = { used: 0 }
      this.counts.set(key, c, ttlMs)
    }
    if (c.used >= limit) return { used: c.used, allowed: false }
    c.used += 1
    return { used: c.used, allowed: true }
  }

  /** Entries held (live or not yet swept), for tests of what the store keeps. */
  get held (): number {
    return this.claims.size + this.notes.size + this.failures.size + this.counts.size
  }
}

// Keeps the record only if none with a higher seq is stored; expires with the token. A stored
// seq too far ahead of the clock (ARGV[4]) was not written by a broker and does not count.
