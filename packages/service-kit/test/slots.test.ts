import { randomUUID } from 'node:crypto'
import t from 'tap'
import calculateSlot from 'cluster-key-slot'
import { keySlot, steerToSlot } from '../src/index.js'

t.test('an id steered to a slot lands its key there, and stays a UUID', async (t) => {
  for (let i = 0; i < 500; i++) {
    const target = Math.floor(Math.random() * 16384)
    const id = steerToSlot('wxlogin:user:', randomUUID(), target)
    if (id === undefined) { t.fail('no id for slot ' + target); continue }
    t.equal(calculateSlot(`wxlogin:user:${id}`), target)
    t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  }
  t.equal(keySlot('a{b}c'), calculateSlot('b'))
})

t.test('a key with a hash tag is not steered: its slot is the tag\'s', async (t) => {
  t.equal(steerToSlot('{wx}:user:', randomUUID(), 5), undefined)
  t.equal(steerToSlot('user:', 'not-hex!', 5), undefined)
})
