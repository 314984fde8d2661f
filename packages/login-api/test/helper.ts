import { generateKeyPairSync, randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import nock from 'nock'
import type { FastifyInstance } from 'fastify'
import { loggerOptions } from '@wxlogin/service-kit'
import { LogCapture, TEST_PII_KEYS, TEST_SERVICE_DEFAULTS } from '@wxlogin/testing'
import { buildApp, type LoginConfig } from '../src/app.js'
import { parsePiiKeys } from '../src/users/pii.js'
import { parseSigningKeys } from '../src/sessions/jwt/signing-keys.js'

export { metricValue, useNock } from '@wxlogin/testing'

/** A login attempt's retry_key, as the mini-program client makes one: 128 random bits. */
export const retryKey = (): string => randomBytes(16).toString('hex')

export const APPID = 'wxlogintest000001'
export const BROKER = 'http://broker.test'
export const BROKER_TOKEN = 'broker-client-token-for-login-api'

export function testConfig (overrides: Partial<LoginConfig> = {}): LoginConfig {
  return {
    ...TEST_SERVICE_DEFAULTS,
    redisKeyPrefix: 'wxlogin:',
    brokerUrl: BROKER,
    brokerToken: BROKER_TOKEN,
    brokerAllowHttp: false,
    brokerTimeoutMs: 1000,
    apps: [APPID],
    phoneRateLimitMax: 5,
    phoneRateLimitWindowSeconds: 60,
    ipRateLimitMax: 1000,
    ipRateLimitWindowSeconds: 60,
    ipv6Prefix: 64,
    codeFailures: { budget: 100, windowSeconds: 60, perIp: 3 },
    sessionTtlSeconds: 604800,
    sessionsPerUserMax: 20,
    eventsMaxLen: 100_000,
    eventsIncludePhone: false,
    retryWithoutKey: false,
    risk: { policy: 'off', maxRank: 3 },
    wechatEventsReceive: false,
    piiKeys: parsePiiKeys(TEST_PII_KEYS),
    trustProxy: { kind: 'none' },
    ...overrides
  }
}

export async function build (t: Test, config: LoginConfig = testConfig()): Promise<{ app: FastifyInstance, logs: LogCapture }> {
  const logs = new LogCapture()
  const app = await buildApp(config, { logger: loggerOptions('trace', 'login-api', logs) })
  t.teardown(() => app.close())
  return { app, logs }
}

/** The broker, as nock: code2session for one login code, and phone numbers. */
export const broker = {
  session: (n: typeof nock, code: string, openid: string, unionid: string | null = null) =>
    n(BROKER, { reqheaders: { authorization: `Bearer ${BROKER_TOKEN}` } })
      .post(`/v1/apps/${APPID}/code2session`, { js_code: code }).reply(200, { openid, unionid }),
  /** The phone exchange for this code and openid, with the retry key the login-api derives. */
  phone: (n: typeof nock, code: string, openid: string) =>
    n(BROKER, { reqheaders: { authorization: `Bearer ${BROKER_TOKEN}` } })
      .post(`/v1/apps/${APPID}/phone-number`, (b: Record<string, unknown>) =>
        b.code === code && b.openid === openid && typeof b.retry_key_sha256 === 'string' && /^[0-9a-f]{64}$/.test(b.retry_key_sha256)),
  phoneInfo: (pure = '13800138000') => ({ phone_info: { phoneNumber: pure, purePhoneNumber: pure, countryCode: '86' } }),
  /** What the broker answers for a refused exchange. */
  phoneError: (error: string, errcode?: number) => ({ error, message: 'x', ...(errcode === undefined ? {} : { wechat_errcode: errcode }) })
}

export const login = async (app: FastifyInstance, payload: object | string, headers: Record<string, string> = {}): Promise<ReturnType<FastifyInstance['inject']> extends Promise<infer R> ? R : never> =>
  await app.inject({ method: 'POST', url: '/api/user/thirdLogin', payload, headers })

/** A JWKS with private keys, as SESSION_SIGNING_KEYS_FILE holds one: one key per kid given. */
export function signingKeysText (...keys: Array<{ kid: string, alg?: 'ES256' | 'EdDSA' }>): string {
  return JSON.stringify({
    keys: keys.map(({ kid, alg = 'ES256' }) => {
      const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
      return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }
    })
  })
}

/** testConfig in SESSION_FORMAT=jwt with these keys (signingKeysText). */
export function jwtConfig (keysText: string, overrides: Partial<LoginConfig> = {}, jwt: Partial<NonNullable<LoginConfig['jwt']>> = {}): LoginConfig {
  return testConfig({
    jwt: { keys: parseSigningKeys(keysText), issuer: 'https://login.test', audience: 'wxlogin-test', accessTtlSeconds: 900, graceSeconds: 5, ...jwt },
    ...overrides
  })
}
