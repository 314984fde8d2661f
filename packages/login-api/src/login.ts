import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import { BrokerError } from '@wxlogin/broker-client'
import { clientAddress, limitAddress, sha256Hex, toServiceError, type ErrorBody, type ServiceError } from '@wxlogin/service-kit'
import { resolveApp } from './apps.js'
import { exchangeKey, exchangeOnce, SETTLED, type DoneExchange, type Exchange } from './code-exchanges.js'
import { errors } from './errors.js'
import type { LoginEvent } from './events.js'
import { brokerFailure } from './phone-service.js'
import type { loginResponse, userSchema } from './schemas.js'
import { newSessionToken } from './sessions.js'
import { storeCall } from './store-call.js'
import type { Identity, UserPatch, UserRecord } from './user-store.js'

export interface ThirdLoginInput { code: string, phoneCode?: string, nickname?: string, head_pic?: string, appid?: string, retry_key?: string }

/** What the mini-program sees of a user, as the response schema says: its identity in this app. */
export type PublicUser = FromSchema<typeof userSchema>
export type LoginAnswer = FromSchema<typeof loginResponse>

export function publicUser (u: UserRecord, identity: Identity): PublicUser {
  return { user_id: u.user_id, appid: identity.appid, openid: identity.openid, unionid: u.unionid, nickname: u.nickname, head_pic: u.head_pic, phone: u.phone }
}

function fromBroker (err: unknown): ServiceError {
  if (err instanceof BrokerError) {
    switch (err.code) {
      case 'invalid_code': return errors.invalidCode(err.wechatErrcode)
      case 'rate_limited': return errors.rateLimited(60, err.wechatErrcode)
      case 'high_risk_user': return errors.highRiskUser(err.wechatErrcode)
    }
  }
  return brokerFailure(err)
}

interface Session { openid: string, unionid: string | null }

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
async function exchangeLoginCode (app: FastifyInstance, request: FastifyRequest, appid: string, code: string, retryKey: string | undefined): Promise<{ key: string, session: Session, reused: boolean, newUser: boolean, settled: Promise<void>, record?: DoneExchange<Session> }> {
  const key = exchangeKey(app.loginConfig.redisKeyPrefix, 'login', appid, code)
  // The broker's timeout covers code2session; a claim outlives a dead instance by no more.
  const waitMs = app.loginConfig.brokerTimeoutMs + 1000
  const ip = limitAddress(clientAddress(request.ip, request.socket.remoteAddress), app.loginConfig.ipv6Prefix)
  // Asked together with the code's claim (one round trip); consulted only for a new exchange.
  const shed = app.codeFailures.shed(appid, ip)
  shed.catch(() => {})
  const result = await exchangeOnce<Session>(app.exchanges, key, async () => {
    try {
      // The broker keeps the answer too: a retry on another instance, after this one died mid-call, still gets it.
      return await app.broker.code2session(appid, code, retryKey === undefined ? undefined : sha256Hex(retryKey))
    } catch (err) {
      const se = fromBroker(err)
      if (se.code === 'invalid_code') {
        app.loginMetrics.codeFailures.inc({ appid })
        await app.codeFailures.record(appid, ip).catch(() => {})
      }
      throw se
    }
  }, {
    waitMs,
    final: se => se.code === 'invalid_code' || se.code === 'high_risk_user',
    beforeWork: async () => {
      // A store that cannot answer does not shed: the spray guard never locks users out.
      if (await shed.catch(() => false)) {
        app.loginMetrics.codeFailuresShed.inc({ appid })
        throw errors.codeSpray(app.loginConfig.codeFailures.windowSeconds)
      }
    },
    owner: {
      hash: retryKey === undefined ? undefined : sha256Hex(retryKey),
      allowNone: app.loginConfig.retryWithoutKey,
      replayed: () => replayed(app)
    }
  })
  if (result.reused) app.loginMetrics.codeReuses.inc({ kind: 'login' })
  return { key, session: result.value, reused: result.reused, newUser: result.newUser, settled: result.settled, record: result.record }
}

/**
 * The phone exchange of a login: its failure logs the user in without a new phone, except over
 * the limit or with the store down. `settled`: the exchange being kept (see exchangeOnce).
 */
async function loginPhone (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, identity: Identity, phoneCode: string | undefined, patch: UserPatch): Promise<{ error: ErrorBody | null, settled: Promise<void>, keys: string[] }> {
  if (phoneCode === undefined || phoneCode === '') return { error: null, settled: SETTLED, keys: [] }
  try {
    const { phone, settled, key } = await app.exchangePhone(request, reply, identity.appid, identity.openid, phoneCode)
    patch.phone = phone
    return { error: null, settled, keys: [key] }
  } catch (err) {
    const se = toServiceError(err)
    if (se.code === 'rate_limited' || se.code === 'store_unavailable' || se.code === 'exchange_in_progress') throw se
    return { error: se.toJSON(), settled: SETTLED, keys: [] }
  }
}

/**
 * The app from the body or WeChat's Referer; code2session through the broker (once per code);
 * one phone exchange under the per-user limit (once per code); the user stored, found by
 * identity and linked by unionid; login events written; a session issued.
 */
export async function thirdLogin (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, input: ThirdLoginInput): Promise<LoginAnswer> {
  const config = app.loginConfig
  const appid = resolveApp(config.apps, input.appid, request.headers.referer)
  // Before the code is spent: with the store down, the login could not be saved anyway.
  if (app.storeProblem() !== undefined) throw errors.storeUnavailable()
  const login = await exchangeLoginCode(app, request, appid, input.code, input.retry_key)
  const identity = { appid, openid: login.session.openid }
  const patch: UserPatch = {}
  if (input.nickname !== undefined && input.nickname !== '') patch.nickname = input.nickname.normalize('NFC')
  if (input.head_pic !== undefined && input.head_pic !== '') patch.head_pic = input.head_pic
  // Each code's answer is kept while the next step's first store command rides in the same
  // write (the phone's claim, the user's reads); each is awaited before anything is answered.
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
  if (login.reused && await storeCall(app.exchanges.countReuse(login.key)) >= RETRY_SESSIONS_PER_CODE) throw replayed(app)
  const { user, isNew, phoneChanged } = await storeCall(app.users.upsertUser(identity, login.session.unionid, patch))
  await phone.settled
  // The first attempt created the user but its answer was lost: the retry says so too.
  const isNewUser = isNew || login.newUser
  const events: LoginEvent[] = []
  if (isNew) events.push({ type: 'user.created', user, ...identity })
  events.push({ type: 'user.logged_in', user, ...identity })
  if (phoneChanged) events.push({ type: 'user.phone_changed', user, ...identity })
  const marked: Exchange<Session> = { ...(login.record ?? { state: 'done', value: login.session }), newUser: true }
  // Independent writes, issued together: one pipeline rather than one round trip each.
  const [,,, session] = await storeCall(Promise.all([
    isNew ? app.exchanges.annotate(login.key, marked) : undefined,
    // So that logout everywhere (or deletion) can take back what a retry would get.
    login.reused ? undefined : app.exchanges.track(user.user_id, [login.key, ...phone.keys]),
    app.events.emit(events),
    issueSession(app, user.user_id, identity)
  ]))
  for (const e of events) app.loginMetrics.events.inc({ type: e.type })
  return { ...session, is_new_user: isNewUser, user: publicUser(user, identity), phone_error: phoneError }
}

/** An opaque session token, or with SESSION_FORMAT=jwt a signed access token and a refresh token. */
async function issueSession (app: FastifyInstance, userId: string, identity: Identity): Promise<{ token: string, expires_in: number, refresh_token?: string }> {
  const config = app.loginConfig
  if (app.signedSessions !== null) return await app.signedSessions.issue(userId, identity)
  const { token, hash } = newSessionToken()
  await app.sessions.create(hash, { user_id: userId, ...identity }, config.sessionTtlSeconds, config.sessionsPerUserMax)
  return { token, expires_in: config.sessionTtlSeconds }
}
