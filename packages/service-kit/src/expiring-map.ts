/** A Map whose entries expire, lazily and on a sweep: what the memory stores (one replica, no Redis) keep. */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V, until: number }>()
  /** The size at which the next sweep runs: twice what the last one left, so a set costs O(1) amortised. */
  private sweepAt = 10_000

  get (key: string): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.until <= Date.now()) {
      this.entries.delete(key)
      return undefined
    }
    return entry.value
  }

  set (key: string, value: V, ttlMs: number): void {
    if (this.entries.size >= this.sweepAt) this.sweep()
    this.entries.set(key, { value, until: Date.now() + ttlMs })
  }

  /** Replaces a live entry's value and keeps its expiry; false when there is none. */
  replace (key: string, value: V): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined || entry.until <= Date.now()) return false
    entry.value = value
    return true
  }

  delete (key: string): boolean {
    return this.entries.delete(key)
  }

  /** The live entries. */
  * [Symbol.iterator] (): IterableIterator<[string, V]> {
    const now = Date.now()
    for (const [key, entry] of this.entries) if (entry.until > now) yield [key, entry.value]
  }

  private sweep (): void {
    const now = Date.now()
    for (const [key, entry] of this.entries) if (entry.until <= now) this.entries.delete(key)
    this.sweepAt = Math.max(10_000, 2 * this.entries.size)
  }

  get size (): number {
    return this.entries.size
  }
}
