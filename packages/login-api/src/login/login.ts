import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import { BrokerError } from '@wxlogin/broker-client'
import {
  clientAddress,
  inSpan,
  limitAddress,
  sha256Hex,
  toServiceError,
  type ErrorBody,
  type ServiceError
} from '@wxlogin/service-kit'
import { resolveApp } from './apps.js'
import { exchangeOnce, SETTLED, type DoneExchange } from '../exchanges/code-exchanges.js'
import { errors } from '../errors.js'
import { commitLogin, type CodeAnswer } from './login-commit.js'
import { brokerFailure } from './phone-service.js'
import { checkRegistrationRisk } from './risk-check.js'
import type { loginResponse, userSchema } from '../schemas.js'
import { storeCall } from '../store-call.js'
import type { Identity, UserPatch, UserRecord } from '../users/user-store.js'

export interface ThirdLoginInput {
  code: string
  phoneCode?: string
  nickname?: string
  head_pic?: string
  appid?: string
  retry_key?: string
}

/** What the mini-program sees of a user, as the response schema says: its identity in this app. */
export type PublicUser = FromSchema<typeof userSchema>
export type LoginAnswer = FromSchema<typeof loginResponse>

export function publicUser (u: UserRecord, identity: Identity): PublicUser {
  return {
    user_id: u.user_id,
    appid: identity.appid,
    openid: identity.openid,
    unionid: u.unionid,
    nickname: u.nickname,
    head_pic: u.head_pic,
    phone: u.phone,
    phone_verified_at: u.phone_verified_at
  }
}

function fromBroker (err: unknown): ServiceError {
  if (err instanceof BrokerError) {
    switch (err.code) {
      case 'invalid_code':
        return errors.invalidCode(err.wechatErrcode)
      case 'rate_limited':
        return errors.rateLimited(60, err.wechatErrcode)
      case 'high_risk_user':
        return errors.highRiskUser(err.wechatErrcode)
    }
  }
  return brokerFailure(err)
}

function replayed (app: FastifyInstance): ServiceError {
  app.loginMetrics.replaysRefused.inc()
  return errors.invalidCode(40163)
}

/** Sessions one login code can open: the first login and a few retries of it, never a stream. */
export const RETRY_SESSIONS_PER_CODE = 5

/**
 * code2session at most once per code: a retry of a login whose answer was lost gets the same
 * openid (and is_new_user as the first attempt saw it), with no WeChat call.
 */
async function exchangeLoginCode (
  app: FastifyInstance,
  request: FastifyRequest,
  appid: string,
  code: string,
  retryKey: string | undefined
): Promise<{
  key: string
  answer: CodeAnswer
  reused: boolean
  newUser: boolean
  settled: Promise<void>
  record?: DoneExchange<CodeAnswer>
}> {
  const key = app.loginKeys.exchange('login', appid, code)
  // The broker's timeout covers code2session; a claim outlives a dead instance by no more.
  const waitMs = app.loginConfig.brokerTimeoutMs + 1000
  const ip = limitAddress(clientAddress(request.ip, request.socket.remoteAddress), app.loginConfig.ipv6Prefix)
  // Asked together with the code's claim (one round trip); consulted only for a new exchange.
  const shed = app.codeFailures.shed(appid, ip)
  shed.catch(() => {})
  // The claim's span holds code2session's when this attempt made the exchange; a retry's, none.
  const result = await inSpan('login claim', {}, async span => {
    const claimed = await exchangeOnce<CodeAnswer>(
      app.exchanges,
      key,
      async () => {
        try {
          // The broker keeps the answer too: a retry on another instance, after this one died mid-call, still gets it.
          return await inSpan(
            'login code2session',
            {},
            async () =>
              await app.broker.code2session(appid, code, retryKey === undefined ? undefined : sha256Hex(retryKey))
          )
        } catch (err) {
          const se = fromBroker(err)
          if (se.code === 'invalid_code') {
            app.loginMetrics.codeFailures.inc({ appid })
            await app.codeFailures.record(appid, ip).catch(() => {})
          }
          throw se
        }
      },
      {
        waitMs,
        final: se => se.code === 'invalid_code' || se.code === 'high_risk_user',
        beforeWork: async () => {
          // Before WeChat is asked: an address over its limit never spends a code.
          await request.ipLimit
          // A store that cannot answer does not shed: the spray guard never locks users out.
          if (await shed.catch(() => false)) {
            app.loginMetrics.codeFailuresShed.inc({ appid })
            throw errors.codeSpray(app.loginConfig.codeFailures.windowSeconds)
          }
        },
        identity: answer => ({ appid, openid: answer.openid }),
        owner: {
          hash: retryKey === undefined ? undefined : sha256Hex(retryKey),
          allowNone: app.loginConfig.retryWithoutKey,
          replayed: () => replayed(app)
        }
      }
    )
    span.setAttribute('login.reused', claimed.reused)
    return claimed
  })
  if (result.reused) app.loginMetrics.codeReuses.inc({ kind: 'login' })
  return {
    key,
    answer: result.value,
    reused: result.reused,
    newUser: result.newUser,
    settled: result.settled,
    record: result.record
  }
}

/**
 * The phone exchange of a login: its failure logs the user in without a new phone, except over
 * the limit or with the store down. `settled`: the exchange being kept (see exchangeOnce).
 */
async function loginPhone (
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  identity: Identity,
  phoneCode: string | undefined,
  patch: UserPatch
): Promise<{ error: ErrorBody | null, settled: Promise<void> }> {
  if (phoneCode === undefined || phoneCode === '') return { error: null, settled: SETTLED }
  try {
    const { phone, settled } = await inSpan(
      'login phone_exchange',
      {},
      async () => await app.exchangePhone(request, reply, identity.appid, identity.openid, phoneCode)
    )
    patch.phone = phone
    return { error: null, settled }
  } catch (err) {
    const se = toServiceError(err)
    if (se.code === 'rate_limited' || se.code === 'store_unavailable' || se.code === 'exchange_in_progress') throw se
    return { error: se.toJSON(), settled: SETTLED }
  }
}

/**
 * The app from the body or WeChat's Referer; code2session through the broker (once per code);
 * one phone exchange under the per-user limit (once per code); the user stored, found by
 * identity and linked by unionid; login events written; a session issued.
 */
export async function thirdLogin (
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  input: ThirdLoginInput
): Promise<LoginAnswer> {
  const config = app.loginConfig
  const appid = resolveApp(config.apps, input.appid, request.headers.referer)
  // Before the code is spent: with the store down, the login could not be saved anyway.
  if (app.storeProblem() !== undefined) throw errors.storeUnavailable()
  const login = await exchangeLoginCode(app, request, appid, input.code, input.retry_key)
  const identity = { appid, openid: login.answer.openid }
  // Before anything of the user is written: under enforce, a risky registration creates nothing.
  await checkRegistrationRisk(app, request, identity)
  const patch: UserPatch = {}
  if (input.nickname !== undefined && input.nickname !== '') patch.nickname = input.nickname.normalize('NFC')
  if (input.head_pic !== undefined && input.head_pic !== '') patch.head_pic = input.head_pic
  // What the commit builds on, read now: it rides in the same write as the login code's answer
  // being kept (and the phone code's claim), instead of a round trip of its own.
  const pending = app.users.beginLogin(identity, login.answer.unionid)
  // Each code's answer is kept while the next step's first store command rides in the same
  // write; each is awaited before anything is answered.
  let phone: Awaited<ReturnType<typeof loginPhone>>
  try {
    phone = await loginPhone(app, request, reply, identity, input.phoneCode, patch)
  } finally {
    // Even when the phone step failed (over the limit, say): a login code whose answer could
    // not be kept is a 503 first, since a retry could no longer use it.
    await login.settled
  }
  const phoneError = phone.error

  // Each retry that gets this far opens a session: a few, for a flaky network, never a stream.
  if (login.reused && (await storeCall(app.exchanges.countReuse(login.key))) >= RETRY_SESSIONS_PER_CODE) {
    throw replayed(app)
  }
  const done = await commitLogin(app, {
    identity,
    unionid: login.answer.unionid,
    patch,
    login: { key: login.key, reused: login.reused, answer: login.answer, record: login.record },
    pending
  })
  await phone.settled
  for (const e of done.events) app.loginMetrics.events.inc({ type: e.type })
  // The first attempt created the user but its answer was lost: the retry says so too.
  return {
    ...done.session,
    is_new_user: done.isNew || login.newUser,
    user: publicUser(done.user, identity),
    phone_error: phoneError
  }
}
