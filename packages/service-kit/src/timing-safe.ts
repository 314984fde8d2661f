import { createHash, timingSafeEqual } from 'node:crypto'

export function sha256Hex (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

/** Two hex digests compared in constant time (for their length); false when either is malformed. */
export function safeEqualHex (a: string, b: string): boolean {
  if (a.length !== b.length || !/^[0-9a-f]*$/i.test(a) || !/^[0-9a-f]*$/i.test(b)) return false
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'))
}

/**
 * Finds which of several secrets a presented value matches, in constant time: the presented
 * value is hashed once and compared against every stored hash (computed once, up front).
 */
export function createSecretMatcher<T> (entries: Array<{ secret: string, value: T }>): (presented: string) => T | null {
  return createHashMatcher(entries.map(e => ({ sha256: sha256Hex(e.secret), value: e.value })))
}

/** The same, against SHA-256 digests (hex) of the secrets: configuration that never holds them in clear. */
export function createHashMatcher<T> (entries: Array<{ sha256: string, value: T }>): (presented: string) => T | null {
  const hashed = entries.map(e => ({ hash: Buffer.from(e.sha256, 'hex'), value: e.value }))
  return presented => {
    const h = createHash('sha256').update(presented).digest()
    let found: T | null = null
    for (const e of hashed) {
      if (timingSafeEqual(h, e.hash) && found === null) found = e.value
    }
    return found
  }
}
