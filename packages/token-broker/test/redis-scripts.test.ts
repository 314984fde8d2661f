// Scripts go to Redis by digest (EVALSHA), their body only where the server lacks it: a login
// sends six scripts of up to 2 KB, which EVAL would send whole each time.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from 'redis'
import { startRedisServer, waitFor } from '@wxlogin/testing'
import { RedisTokenStore } from '../src/store/token-store.js'
import { BrokerKeys } from '../src/keys.js'
import { APPID } from './helper.js'
import { handleAndClient } from './replica-helpers.js'

async function calls (client: ReturnType<typeof createClient>): Promise<Record<string, number>> {
  const text = await client.info('commandstats')
  return Object.fromEntries([...text.matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)].map(m => [m[1], Number(m[2])]))
}

t.test('EVALSHA each time; the body once, and again after the server lost its scripts (NOSCRIPT)', async t => {
  const redis = await startRedisServer(t)
  const { handle, client } = await handleAndClient(t, redis.connection)
  const store = new RedisTokenStore(handle, new BrokerKeys('test:'), [APPID])

  const [a, b, c] = [await store.nextSeq(APPID), await store.nextSeq(APPID), await store.nextSeq(APPID)]
  t.ok(a < b && b < c, 'the script ran each time')
  t.same(await calls(client), { eval: 1, evalsha: 3 }, 'three by digest, the first refused (NOSCRIPT) and sent whole')

  await client.scriptFlush()
  const after = await store.nextSeq(APPID)
  t.ok(after > c, 'runs after the server lost its scripts, once')
  t.same(await calls(client), { eval: 2, evalsha: 4 }, 'the body sent again, once')
  await store.nextSeq(APPID)
  t.same(await calls(client), { eval: 2, evalsha: 5 }, 'then by digest again')
})

t.test('a durable write whose script went out whole after its WAIT waits again (REDIS_WAIT_REPLICAS)', async t => {
  // A full sync writes an RDB file: into a directory of the test's, not its working directory.
  const dir = mkdtempSync(join(tmpdir(), 'redis-scripts-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const master = await startRedisServer(t, { args: ['--dir', dir, '--dbfilename', 'master.rdb'] })
  await startRedisServer(t, { args: ['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)] })
  const { handle, client } = await handleAndClient(t, { ...master.connection, waitReplicas: 1 })
  const inSync = async (): Promise<boolean> => /slave0:.*state=online/.test(await client.info('replication'))
  await waitFor(inSync, { what: 'the replica in sync' })
  const waits = async (): Promise<number> =>
    Number(/^cmdstat_wait:calls=(\d+)/m.exec(await client.info('commandstats'))?.[1] ?? 0)
  const script = "return redis.call('SET', KEYS[1], ARGV[1])"
  const write = async (value: string): Promise<unknown> =>
    await handle.durable('k', handle.cmd.eval(script, { keys: ['k'], arguments: [value] }))

  await write('1')
  t.equal(await waits(), 2, 'the first: NOSCRIPT, the body after the WAIT, so a second WAIT')
  await write('2')
  t.equal(await waits(), 3, 'by digest: one WAIT, in the same round trip')
  await client.scriptFlush()
  await write('3')
  t.equal(await waits(), 5, 'after the server lost its scripts: two again')
  t.equal(await client.get('k'), '3')
})
