import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FromSchema } from 'json-schema-to-ts'
import { BrokerError } from '@wxlogin/broker-client'
import { toServiceError, type ErrorBody, type ServiceError } from '@wxlogin/service-kit'
import { errors } from './errors.js'
import { brokerFailure } from './phone-service.js'
import type { loginResponse, userSchema } from './schemas.js'
import { newSessionToken } from './sessions.js'
import { storeCall } from './store-call.js'
import type { UserPatch, UserRecord } from './user-store.js'

export interface ThirdLoginInput { code: string, phoneCode?: string, nickname?: string, head_pic?: string }

/** What the mini-program sees of a user (no appid, no timestamps), as the response schema says. */
export type PublicUser = FromSchema<typeof userSchema>
export type LoginAnswer = FromSchema<typeof loginResponse>

export function publicUser (u: UserRecord): PublicUser {
  return { openid: u.openid, unionid: u.unionid, nickname: u.nickname, head_pic: u.head_pic, phone: u.phone }
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

/**
 * code2session through the broker, then (when a phoneCode came) one phone exchange under the
 * per-user limit, then the user stored and a session issued. A failed phone exchange logs the
 * user in without a new phone and says why in `phone_error`; over the limit, or with the store
 * down, the request fails.
 */
export async function thirdLogin (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, input: ThirdLoginInput): Promise<LoginAnswer> {
  const config = app.loginConfig
  // Before the code is spent: with the store down, the login could not be saved anyway.
  if (app.storeProblem() !== undefined) throw errors.storeUnavailable()
  let session
  try {
    session = await app.broker.code2session(config.appid, input.code)
  } catch (err) {
    throw fromBroker(err)
  }
  const patch: UserPatch = {}
  if (session.unionid !== null) patch.unionid = session.unionid
  if (input.nickname !== undefined && input.nickname !== '') patch.nickname = input.nickname
  if (input.head_pic !== undefined && input.head_pic !== '') patch.head_pic = input.head_pic

  let phoneError: ErrorBody | null = null
  if (input.phoneCode !== undefined && input.phoneCode !== '') {
    try {
      patch.phone = await app.exchangePhone(request, reply, session.openid, input.phoneCode)
    } catch (err) {
      const se = toServiceError(err)
      if (se.code === 'rate_limited' || se.code === 'store_unavailable') throw se
      phoneError = se.toJSON()
    }
  }

  const { user, isNew } = await storeCall(app.users.upsertUser(config.appid, session.openid, patch))
  const { token, hash } = newSessionToken()
  await storeCall(app.sessions.create(hash, { appid: config.appid, openid: session.openid }, config.sessionTtlSeconds))
  return { token, expires_in: config.sessionTtlSeconds, is_new_user: isNew, user: publicUser(user), phone_error: phoneError }
}
