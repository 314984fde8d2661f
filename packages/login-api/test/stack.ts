import type { Test } from 'tap'
import got from 'got'
import type { FastifyInstance } from 'fastify'
import { createSimulator, CONTROL_PREFIX } from '@wxlogin/wechat-sim'
import { buildApp as buildBroker, buildPushListener, type BrokerConfig } from '@wxlogin/token-broker'
import { loggerOptions } from '@wxlogin/service-kit'
import { LogCapture, startRedisServer, waitFor, type RedisServer } from '@wxlogin/testing'
import { APPID, BROKER_TOKEN, build, testConfig } from './helper.js'
import type { LoginConfig } from '../src/config.js'

export const SECRET = 'replica-test-secret'

export interface Stack {
  apps: FastifyInstance[]
  /** Each login-api's log lines, and the broker's, at trace level. */
  logs: LogCapture[]
  brokerLogs: LogCapture
  sim: ReturnType<typeof createSimulator>
  redis: RedisServer
  /** With `push`: the broker's push URL (its own listener), for the simulator to push to. */
  pushUrl?: string
  /** A login code and a phone code for `openid` (of `appid`, the first app by default). */
  mint: (openid: string, opts?: { appid?: string, unionid?: string | null, phoneNumber?: string }) => Promise<{ code: string, phoneCode: string }>
}

export interface StackOptions {
  login?: Partial<LoginConfig>
  brokerTimeouts?: { upstreamTimeoutMs?: number, retryBudgetMs?: number }
  /** The mini-programs the simulator and broker hold and the login-apis serve. */
  appids?: string[]
  /** The login-apis' Redis (a Sentinel or Cluster topology); the broker keeps its own. */
  redis?: LoginConfig['redis']
  /** Login-apis with no Redis at all: every store in process (`pnpm start` without REDIS_URL). */
  memory?: boolean
  /** The broker takes WeChat's pushes (PUSH_TOKEN, PUSH_AES_KEY) and hands them to the login-api's client. */
  push?: boolean
}

export const PUSH_TOKEN = 'stackPushToken1'
export const PUSH_AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'

/** Simulator and token-broker on real ports, sharing one real Redis with `instances` login-apis. */
export async function stack (t: Test, instances: number, opts: StackOptions = {}): Promise<Stack> {
  const appids = opts.appids ?? [APPID]
  const redis = await startRedisServer(t)
  const sim = createSimulator({ apps: appids.map(appid => ({ appid, secret: SECRET })) })
  await sim.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => sim.app.close())
  const simUrl = `http://127.0.0.1:${(sim.app.server.address() as { port: number }).port}`
  const brokerLogs = new LogCapture()
  const brokerConfig: BrokerConfig = {
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    logLevel: 'trace',
    redis: redis.connection,
    redlock: [redis.connection],
    redisKeyPrefix: 'wxbroker:',
    wechatBaseUrl: simUrl,
    apps: appids.map(appid => ({ appid, secret: SECRET, tokenMode: 'stable' as const })),
    clients: [{ name: 'login-api', token: BROKER_TOKEN, apps: appids, admin: false, ...(opts.push === true ? { events: ['*'] } : {}) }],
    ...(opts.push === true
      ? { push: { port: 0, apps: new Map(appids.map(a => [a, { token: PUSH_TOKEN, aesKey: Buffer.from(`${PUSH_AES_KEY}=`, 'base64') }])), visibilityMs: 2000, retentionMs: 3_600_000 } }
      : {}),
    refreshAheadSeconds: 300,
    verifyFloorMs: 5000,
    reaskWindowMs: 60_000,
    lockTtlMs: 5000,
    upstreamTimeoutMs: opts.brokerTimeouts?.upstreamTimeoutMs ?? 2000,
    retryBudgetMs: opts.brokerTimeouts?.retryBudgetMs ?? 2000,
    failureMemoryMs: 1000,
    forceRefreshIntervalMs: 60_000,
    forceRefreshGraceMs: 60_000,
    invalidationBudget: { stable: 10, classic: 1000 }
  }
  const broker = await buildBroker(brokerConfig, { logger: loggerOptions('trace', 'token-broker', brokerLogs), got: got.extend({ retry: { limit: 0 } }) })
  await broker.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => broker.close())
  let pushUrl: string | undefined
  if (opts.push === true) {
    const listener = await buildPushListener(broker, brokerConfig) as FastifyInstance
    await listener.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => listener.close())
    pushUrl = `http://127.0.0.1:${(listener.server.address() as { port: number }).port}/wechat/push`
  }
  const brokerUrl = `http://127.0.0.1:${(broker.server.address() as { port: number }).port}`
  const apps: FastifyInstance[] = []
  const logs: LogCapture[] = []
  for (let i = 0; i < instances; i++) {
    const built = await build(t, testConfig({ redis: opts.memory === true ? undefined : opts.redis ?? redis.connection, brokerUrl, apps: appids, ...opts.login }))
    apps.push(built.app)
    logs.push(built.logs)
  }
  for (const app of apps) await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, { what: 'login-api ready' })
  const mint: Stack['mint'] = async (openid, m = {}) => {
    const appid = m.appid ?? appids[0]
    const code = (await sim.app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/login-codes`, payload: { appid, openid, unionid: m.unionid ?? null } })).json().code
    const phoneCode = (await sim.app.inject({ method: 'POST', url: `${CONTROL_PREFIX}/phone-codes`, payload: { appid, phoneNumber: m.phoneNumber ?? '13800138000', openid } })).json().code
    return { code, phoneCode }
  }
  return { apps, logs, brokerLogs, sim, redis, mint, ...(pushUrl === undefined ? {} : { pushUrl }) }
}
