// claimOnce: the claim/look/wait loop both services' code exchanges share, over a store held in
// the test (the Redis and memory stores behind it are tested in each service).
import t from 'tap'
import { claimOnce, sameOwner, type Look } from '../src/claim-once.js'

function steps (looks: Array<Look<string>>, claims: boolean[], lookFirst = false, clock = { now: 0 }) {
  const calls: string[] = []
  return {
    calls,
    steps: {
      claim: async () => { calls.push('claim'); return claims.shift() ?? false },
      look: async () => { calls.push('look'); return looks.shift() ?? { state: 'pending' as const } },
      lookFirst,
      waitMs: 100,
      busy: () => new Error('busy'),
      now: () => clock.now
    }
  }
}

t.test('a first request claims at once, with no look', async t => {
  const s = steps([], [true])
  t.same(await claimOnce(s.steps), { state: 'claimed' })
  t.same(s.calls, ['claim'])
})

t.test('look first: a settled code is answered with no claim (a retry writes nothing)', async t => {
  const s = steps([{ state: 'settled', record: 'kept' }], [], true)
  t.same(await claimOnce(s.steps), { state: 'settled', record: 'kept' })
  t.same(s.calls, ['look'])
})

t.test('another caller holds it: wait for its record', async t => {
  const s = steps([{ state: 'pending' }, { state: 'pending' }, { state: 'settled', record: 'theirs' }], [false, false, false])
  t.same(await claimOnce(s.steps), { state: 'settled', record: 'theirs' })
  t.same(s.calls, ['claim', 'look', 'claim', 'look', 'claim', 'look'])
})

t.test('released in between (absent): claimed again', async t => {
  const s = steps([{ state: 'absent' }], [false, true])
  t.same(await claimOnce(s.steps), { state: 'claimed' })
})

t.test('still held when the wait runs out: busy, never a wait without end', async t => {
  const clock = { now: 0 }
  const s = steps([], [], false, clock)
  s.steps.claim = async () => { clock.now += 60; return false }
  await t.rejects(claimOnce(s.steps), /busy/)
})

t.test('absent past the deadline is not busy: it is claimed again', async t => {
  const clock = { now: 1000 }
  const s = steps([{ state: 'absent' }, { state: 'absent' }], [false, false, true], false, clock)
  s.steps.waitMs = 0
  t.same(await claimOnce(s.steps), { state: 'claimed' })
})

t.test('sameOwner: only the first caller\'s hash, compared in constant time', async t => {
  const a = 'ab'.repeat(32)
  const b = 'cd'.repeat(32)
  t.ok(sameOwner(a, a))
  t.notOk(sameOwner(a, b))
  t.notOk(sameOwner(a, undefined), 'a kept answer with an owner never goes to a caller without one')
  t.notOk(sameOwner(undefined, a), 'nor one without an owner to a caller with one')
  t.notOk(sameOwner(undefined, undefined), 'ownerless records go nowhere unless allowed')
  t.ok(sameOwner(undefined, undefined, true))
})
