import { createHash, timingSafeEqual } from 'node:crypto'

/** Constant-time equality for secrets of any length: both sides are hashed to 32 bytes first. */
export function safeEqual (a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}

export function sha256Hex (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}
