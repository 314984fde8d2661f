import type { Test } from 'tap'
import got from 'got'
import type { FastifyInstance } from 'fastify'
import { loggerOptions } from '@wxlogin/service-kit'
import { LogCapture, TEST_SERVICE_DEFAULTS } from '@wxlogin/testing'
import { buildApp, type BrokerConfig, type BuildOptions } from '../src/app.js'

export { metricValue, useNock } from '@wxlogin/testing'

export const APPID = 'wxtest0000000001'
export const SECRET = 'app-secret-9f8e7d6c5b4a'
export const CLIENT_TOKEN = 'client-token-login-api-0123456789'
export const OTHER_CLIENT_TOKEN = 'client-token-other-service-0123456789'
export const WX = 'http://wechat.test'

export function testConfig (overrides: Partial<BrokerConfig> = {}): BrokerConfig {
  return {
    ...TEST_SERVICE_DEFAULTS,
    redlock: [],
    redisKeyPrefix: 'wxbroker:',
    apps: [{ appid: APPID, secret: SECRET, tokenMode: 'stable' }],
    clients: [
      { name: 'login-api', token: CLIENT_TOKEN, apps: ['*'], admin: false },
      { name: 'other', token: OTHER_CLIENT_TOKEN, apps: ['wxsomeotherapp0001'], admin: false }
    ],
    wechatBaseUrl: WX,
    refreshAheadSeconds: 300,
    verifyFloorMs: 5000,
    reaskWindowMs: 60_000,
    lockTtlMs: 5000,
    upstreamTimeoutMs: 1000,
    retryBudgetMs: 2000,
    failureMemoryMs: 5000,
    forceRefreshIntervalMs: 0,
    forceRefreshGraceMs: 60_000,
    invalidationBudget: { stable: 20, classic: 2000 },
    ...overrides
  }
}

export interface Built { app: FastifyInstance, logs: LogCapture }

/** Builds a broker whose logs go to a capture stream (at trace, so every line is searchable). */
export async function build (t: Test, config: BrokerConfig = testConfig(), opts: BuildOptions = {}): Promise<Built> {
  const logs = new LogCapture()
  const app = await buildApp(config, {
    got: got.extend({ retry: { limit: 0 } }),
    logger: loggerOptions('trace', 'token-broker', logs),
    backoffBaseMs: 5,
    ...opts
  })
  t.teardown(() => app.close())
  return { app, logs }
}

/** nock for one test: no real network, mocks cleaned after. */

export const auth = (token = CLIENT_TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` })

export const tokenReply = (token: string, expiresIn = 7200): { access_token: string, expires_in: number } => ({ access_token: token, expires_in: expiresIn })
