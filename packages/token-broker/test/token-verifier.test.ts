// "Does WeChat still take this token?": concurrent askers share one check; an asker that comes
// after a check finished (its SDK met 40001 since) gets a check of its own, one per floor per app.
import t from 'tap'
import { Counter, Registry } from 'prom-client'
import { waitFor } from '@wxlogin/testing'
import { MemoryTokenStore } from '../src/store/memory-token-store.js'
import { TokenVerifier } from '../src/sdk-compat/token-verifier.js'
import { APPID } from './helper.js'

const silent = { info: () => {}, warn: () => {}, error: () => {} } as never

/** A check that answers only when the test says so, and counts how often WeChat was asked. */
function heldCheck (): { check: () => Promise<'valid' | 'invalid'>, answer: (v: 'valid' | 'invalid') => void, calls: () => number } {
  let calls = 0
  let waiting: Array<(v: 'valid' | 'invalid') => void> = []
  return {
    check: async () => {
      calls++
      return await new Promise(resolve => { waiting.push(resolve) })
    },
    answer: v => { for (const w of waiting) w(v); waiting = [] },
    calls: () => calls
  }
}

function verifier (check: () => Promise<'valid' | 'invalid'>, floorMs: number, now?: () => number): TokenVerifier {
  const metrics = new Counter({ name: 'v', help: 'v', labelNames: ['appid', 'result'], registers: [new Registry()] })
  return new TokenVerifier({ store: new MemoryTokenStore(), check, floorMs, waitMs: 5000, metrics, log: silent, now })
}

t.test('askers while a check runs share it: one WeChat call for ten', async t => {
  const held = heldCheck()
  const v = verifier(held.check, 50)
  const asks = Array.from({ length: 10 }, async () => await v.verify(APPID, 'T'))
  await waitFor(() => held.calls() === 1, { what: 'the check to start' })
  held.answer('valid')
  t.same(await Promise.all(asks), Array(10).fill('valid'))
  t.equal(held.calls(), 1)
})

t.test('an asker after a check finished gets a new check, never the old "valid"', async t => {
  const held = heldCheck()
  // The clock stands still: the verdict and the next ask share a millisecond, and the ask must not
  // be answered by a verdict it cannot be shown to predate (CI once met this by chance).
  const v = verifier(held.check, 200, () => 1_000_000)
  const first = v.verify(APPID, 'T')
  await waitFor(() => held.calls() === 1, { what: 'the first check' })
  held.answer('valid')
  t.equal(await first, 'valid')
  // The token is revoked now; the SDK met 40001 and asks again, within the floor.
  const second = v.verify(APPID, 'T')
  await waitFor(() => held.calls() === 2, { what: 'a second check, once the floor allows' })
  held.answer('invalid')
  t.equal(await second, 'invalid', 'the revocation is seen')
  t.equal(await v.verify(APPID, 'T'), 'invalid', 'an invalid verdict stays (a token never comes back to life)')
  t.equal(held.calls(), 2)
})
