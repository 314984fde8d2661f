// Broker replicas for the replica tests (test/replicas.test.ts, test/faults/replica-faults.test.ts).
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import Fastify from 'fastify'
import { createClient } from 'redis'
import { RedisHandle, type RedisConnection } from '@wxlogin/service-kit'
import { createSimulator, type Simulator } from '@wxlogin/wechat-sim'
import { waitFor } from '@wxlogin/testing'
import type { BrokerConfig } from '../src/config.js'
import { APPID, SECRET, auth, build, testConfig } from './helper.js'

export const silentLog = Fastify({ logger: false }).log
export const TOKEN_URL = `/v1/apps/${APPID}/access-token`

export async function startSim (t: Test, opts: Parameters<typeof createSimulator>[0] = {}): Promise<Simulator & { url: string }> {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }], ...opts })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  return { ...sim, url: `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}` }
}

/**
 * A connected RedisHandle on `connection` (what the broker's stores run on) and a plain client on
 * the same server to look behind it; both closed when the test ends.
 */
export async function handleAndClient (
  t: Test,
  connection: RedisConnection
): Promise<{ handle: RedisHandle, client: ReturnType<typeof createClient> }> {
  const client = createClient({ url: connection.url })
  client.on('error', () => {})
  await client.connect()
  const handle = new RedisHandle(connection, silentLog, 'test').start()
  await waitFor(() => handle.ok(), { what: 'connected' })
  t.teardown(async () => { await client.quit(); await handle.close() })
  return { handle, client }
}

/** Broker replicas sharing Redis, each ready (connected) before the test starts. */
export async function replicas (t: Test, n: number, config: Partial<BrokerConfig>): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  for (let i = 0; i < n; i++) apps.push((await build(t, testConfig(config))).app)
  for (const app of apps) await waitFor(async () => (await app.inject('/readyz')).json().status === 'ready', { what: 'replica ready (connected to Redis)' })
  return apps
}

export const getToken = async (app: FastifyInstance): Promise<{ status: number, token: string }> => {
  const res = await app.inject({ method: 'GET', url: TOKEN_URL, headers: auth() })
  return { status: res.statusCode, token: res.json().access_token }
}

export const invalidate = async (app: FastifyInstance, stale: string): Promise<{ status: number, token: string }> => {
  const res = await app.inject({ method: 'POST', url: `${TOKEN_URL}/invalidate`, headers: auth(), payload: { access_token: stale } })
  return { status: res.statusCode, token: res.json().access_token }
}
