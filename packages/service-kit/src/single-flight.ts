/** One run per key at a time: callers that ask while it runs share its result. */
export class SingleFlight<K, V> {
  private readonly running = new Map<K, Promise<V>>()

  has (key: K): boolean {
    return this.running.has(key)
  }

  /** The run in flight for `key`, if any (to share it without starting one). */
  pending (key: K): Promise<V> | undefined {
    return this.running.get(key)
  }

  async run (key: K, work: () => Promise<V>): Promise<V> {
    const current = this.running.get(key)
    if (current !== undefined) return await current
    const p = work().finally(() => {
      this.running.delete(key)
    })
    this.running.set(key, p)
    return await p
  }
}
