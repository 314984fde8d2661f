import type { Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { createSimulator, type Simulator } from '@wxlogin/wechat-sim'
import { freePort, startServiceProcess, waitServiceReady } from '@wxlogin/testing'
import { APPID, CLIENT_TOKEN, OTHER_CLIENT_TOKEN, SECRET } from './helper.js'

// Broker processes (dist/server.js) and the simulator on real ports, for the black-box tests.

export const ADMIN_TOKEN = 'client-token-admin-0123456789abcdef'

export async function startSim (t: Test, opts: Parameters<typeof createSimulator>[0] = {}): Promise<Simulator & { url: string }> {
  const sim = createSimulator({ apps: [{ appid: APPID, secret: SECRET }], ...opts })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  return { ...sim, url: `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}` }
}

export interface BrokerProcess { url: string, metrics: () => Promise<string>, stderr: () => string }

export async function startBroker (t: Test, env: Record<string, string>): Promise<BrokerProcess> {
  const port = await freePort()
  const metricsPort = await freePort()
  const proc = startServiceProcess(fileURLToPath(new URL('../dist/server.js', import.meta.url)), {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info',
      WECHAT_APPID: APPID,
      WECHAT_SECRET: SECRET,
      BROKER_CLIENTS: JSON.stringify([
        { name: 'orders-service', token: CLIENT_TOKEN, apps: ['*'] },
        { name: 'other', token: OTHER_CLIENT_TOKEN, apps: ['wxsomeotherapp0001'] },
        { name: 'ops', token: ADMIN_TOKEN, apps: ['*'], admin: true }
      ]),
      WECHAT_API_ALLOW_HTTP: 'true',
      ...env
    }
  })
  // The tests read the whole output (both streams) for secrets.
  t.teardown(async () => { await proc.stop() })
  const url = `http://127.0.0.1:${port}`
  await waitServiceReady(proc, async () => (await (await fetch(`${url}/readyz`)).json() as { status: string }).status === 'ready', { what: 'broker' })
  return { url, metrics: async () => await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(), stderr: proc.output }
}
