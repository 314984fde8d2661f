import t from 'tap'
import { createConnection } from 'node:net'
import { startRedisServer } from '../src/index.js'

const ping = async (port: number): Promise<string> => await new Promise(resolve => {
  const s = createConnection({ port, host: '127.0.0.1' })
  s.once('connect', () => s.write('PING\r\n'))
  s.once('data', d => { s.destroy(); resolve(d.toString().trim()) })
  s.once('error', () => resolve('down'))
})

t.test('a private redis-server on a free port: stops, and starts again on the same port', async t => {
  const r = await startRedisServer(t)
  t.equal(await ping(r.port), '+PONG')
  await r.stop()
  t.equal(await ping(r.port), 'down')
  await r.start()
  t.equal(await ping(r.port), '+PONG')
})
