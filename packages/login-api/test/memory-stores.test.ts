// The memory stores (one replica, no Redis: `pnpm start`) answer a login in time independent of
// how many other users are logged in: no scan of everyone's sessions, no sweep on every write.
import t from 'tap'
import { ExpiringMap } from '@wxlogin/service-kit'
import { waitFor } from '@wxlogin/testing'
import { MemorySessionStore } from '../src/sessions/session-store.js'
import { MemoryRefreshStore } from '../src/sessions/jwt/refresh-store.js'

/** Counts full iterations of an ExpiringMap held by a store (what a scan of all users costs). */
function countScans (map: ExpiringMap<unknown>): { scans: number } {
  const counter = { scans: 0 }
  const iterate = map[Symbol.iterator].bind(map)
  map[Symbol.iterator] = () => { counter.scans++; return iterate() }
  return counter
}

t.test('sessions: a login, the cap and logout everywhere touch only the user\'s own sessions', async t => {
  const store = new MemorySessionStore()
  for (let i = 0; i < 30_000; i++) await store.create(`h${i}`, { user_id: `u${i}`, appid: 'a', openid: `o${i}` }, 600, 3)
  const all = countScans((store as unknown as { sessions: ExpiringMap<unknown> }).sessions)
  for (let i = 0; i < 5; i++) await store.create(`mine${i}`, { user_id: 'me', appid: 'a', openid: 'me' }, 600, 3)
  t.equal(await store.get('mine0'), null, 'the cap ended the oldest beyond 3')
  t.equal(await store.get('mine1'), null)
  t.ok(await store.get('mine2'))
  t.equal(await store.deleteAllOf('me'), 3, 'logout everywhere ends the three')
  t.equal(await store.get('mine4'), null)
  t.ok(await store.get('h29999'), 'nobody else\'s session ended')
  t.equal(all.scans, 0, 'no scan of every session')
})

t.test('refresh families: the same, the cap ending the family that expires first', async t => {
  const store = new MemoryRefreshStore()
  for (let i = 0; i < 30_000; i++) await store.create(`f${i}`, `t${i}`, { user_id: `u${i}`, appid: 'a', openid: `o${i}` }, 600, 3)
  const all = countScans((store as unknown as { families: ExpiringMap<unknown> }).families)
  const me = { user_id: 'me', appid: 'a', openid: 'me' }
  for (let i = 0; i < 3; i++) await store.create(`mine${i}`, `tok${i}`, me, 600, 3)
  const created = Date.now()
  await waitFor(() => Date.now() > created + 1, { what: 'the clock to move on' })
  t.equal((await store.rotate('mine0', 'tok0', 'tok0b', 600, 0)).result, 'rotated', 'the oldest is refreshed: it now expires last')
  await store.create('mine3', 'tok3', me, 600, 3)
  t.equal(await store.isLive('mine1'), false, 'the cap ended the family that expires first')
  t.equal(await store.isLive('mine0'), true)
  t.equal(await store.revokeAllOf('me'), 3)
  t.equal(all.scans, 0, 'no scan of every family')
})

t.test('ExpiringMap: expired entries are swept, at most once per doubling of its size', async t => {
  const map = new ExpiringMap<number>()
  let sweeps = 0
  const internal = map as unknown as { sweep: () => void }
  const sweep = internal.sweep.bind(map)
  internal.sweep = () => { sweeps++; sweep() }
  for (let i = 0; i < 40_000; i++) map.set(`live${i}`, i, 600_000)
  t.ok(sweeps <= 3, `${sweeps} sweeps for 40,000 live entries (not one per write past 10,000)`)
  const brief = new ExpiringMap<number>()
  for (let i = 0; i < 20_000; i++) brief.set(`gone${i}`, i, 1)
  const setAt = Date.now()
  await waitFor(() => Date.now() > setAt + 2, { what: 'their 1 ms life to pass' })
  for (let i = 0; i < 10_000; i++) brief.set(`new${i}`, i, 600_000)
  t.ok(brief.size <= 20_000, `the expired entries were dropped: ${brief.size} held`)
})
