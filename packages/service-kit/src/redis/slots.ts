import { randomInt } from 'node:crypto'
import calculateSlot from 'cluster-key-slot'

/** The Cluster hash slot of a key (its hash tag's, where it has one). */
export const keySlot = (key: string): number => calculateSlot(key)

// CRC16/XMODEM, the one Redis Cluster hashes keys with, table-driven.
const TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n << 8
  for (let k = 0; k < 8; k++) c = (c & 0x8000) !== 0 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff
  return c
})

function crc (state: number, bytes: Uint8Array | number[]): number {
  let s = state
  for (const b of bytes) s = (TABLE[((s >> 8) ^ b) & 0xff] as number) ^ ((s << 8) & 0xffff)
  return s
}

const HEX = '0123456789abcdef'

/** Hex digits chosen, and the most tries: 16,384 expected, each four table steps. */
const DIGITS = 6
const TRIES = 1 << 18

/**
 * `id` with its last six hex digits chosen so that `prefix + id` hashes to `slot` (an id that
 * ends in six hex digits, such as a UUID: its other digits stay as they were). Undefined when the
 * key has a hash tag (its slot does not depend on the id) or no digits found reach the slot.
 * About 16,000 CRC steps of six bytes on average: a fraction of a millisecond. Four digits were
 * tried first: they reach only about four slots in five.
 */
export function steerToSlot (prefix: string, id: string, slot: number): string | undefined {
  const head = prefix + id.slice(0, -DIGITS)
  if (/\{[^}]+\}/.test(head) || !/[0-9a-f]{6}$/.test(id)) return undefined
  const state = crc(0, Buffer.from(head, 'utf8'))
  let v = randomInt(1 << (4 * DIGITS))
  const digits = new Array<number>(DIGITS)
  for (let i = 0; i < TRIES; i++) {
    // An odd stride walks every value once, touching all six digits from the first steps.
    v = (v + 0x9e3779) & ((1 << (4 * DIGITS)) - 1)
    for (let d = 0; d < DIGITS; d++) digits[d] = HEX.charCodeAt((v >> (4 * (DIGITS - 1 - d))) & 15)
    if ((crc(state, digits) & 0x3fff) === slot) return id.slice(0, -DIGITS) + String.fromCharCode(...digits)
  }
  return undefined
}
