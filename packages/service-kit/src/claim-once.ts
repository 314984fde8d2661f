import { safeEqualHex } from './timing-safe.js'

/**
 * What a look at a single-use code's exchange finds: its settled record (answered or failed for
 * good), `pending` while another caller holds the claim, `absent` when nobody does (never
 * claimed, released after a failure a retry may not meet, or its claim expired).
 */
export type Look<R> = { state: 'settled', record: R } | { state: 'pending' } | { state: 'absent' }

/** The code is this caller's to exchange, or another caller's exchange settled it. */
export type ClaimOutcome<R> = { state: 'claimed' } | { state: 'settled', record: R }

export interface ClaimSteps<R> {
  /** Claims the code (a lease in the shared store); true when this caller holds it now. */
  claim: () => Promise<boolean>
  look: () => Promise<Look<R>>
  /**
   * Look before the first claim: a retry is answered with no write. Otherwise a first request
   * claims at once and spends no round trip on a look (the common case at the login-api).
   */
  lookFirst: boolean
  /** How long to wait for another caller's exchange of the same code. */
  waitMs: number
  /** Thrown when the wait runs out while another caller still holds the code. */
  busy: () => Error
  now?: () => number
}

const FIRST_PAUSE_MS = 20
const MAX_PAUSE_MS = 200

/**
 * "Exchange a code at most once across every instance", the part both services share: claim the
 * code, or find what another caller's exchange settled, or wait for it (backing off, bounded by
 * `waitMs`). What the caller does once it holds the claim (call WeChat, keep the answer, release
 * on a failure a retry may not meet) is its own.
 */
export async function claimOnce<R> (steps: ClaimSteps<R>): Promise<ClaimOutcome<R>> {
  const now = steps.now ?? Date.now
  const deadline = now() + steps.waitMs
  let pause = FIRST_PAUSE_MS
  let looked = steps.lookFirst ? await steps.look() : undefined
  for (;;) {
    if (looked?.state === 'settled') return looked
    if (await steps.claim()) return { state: 'claimed' }
    looked = await steps.look()
    if (looked.state === 'settled') return looked
    // Absent: released or expired in between, so claim again (after a pause: never a spin).
    if (looked.state === 'pending' && now() >= deadline) throw steps.busy()
    await new Promise(resolve => setTimeout(resolve, Math.min(pause, Math.max(1, deadline - now()))))
    pause = Math.min(pause * 2, MAX_PAUSE_MS)
  }
}

/**
 * Whether a kept answer may go to this caller: only the first caller's owner hash (the SHA-256 of
 * its retry key) gets it again, compared in constant time. A record kept without an owner goes
 * only to a caller without one, and only where `allowNone` says such records exist.
 */
export function sameOwner (kept: string | undefined, asked: string | undefined, allowNone = false): boolean {
  if (kept === undefined) return allowNone && asked === undefined
  return asked !== undefined && safeEqualHex(kept, asked)
}
