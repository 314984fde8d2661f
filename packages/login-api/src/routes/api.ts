import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import { BrokerError } from '@wxlogin/broker-client'
import { clientAddress, maskPhone, ServiceError, toServiceError } from '@wxlogin/service-kit'
import type { LoginConfig } from '../config.js'
import { errors } from '../errors.js'
import type { LoginMetrics } from '../metrics.js'
import { brokerFailure } from '../phone-service.js'
import { nodeRedisRateLimitStore } from '../rate-limit-store.js'
import { bearer, hashSessionToken, newSessionToken } from '../sessions.js'
import type { PhoneInfo, SessionRecord, UserPatch, UserRecord } from '../user-store.js'

declare module 'fastify' {
  interface FastifyRequest {
    phoneLimitKey: string
    session: (SessionRecord & { hash: string }) | null
  }
}

const codeString = { type: 'string', maxLength: 128, pattern: '^[\\x21-\\x7e]*$' } as const

// Checked before any WeChat call, so nothing paid for is lost to a value Redis cannot store.
// Ajv compiles patterns with the u flag: \p{Cs} is a lone surrogate (not well-formed
// Unicode), \p{Cc} a control character, \p{Bidi_C} the bidi overrides that disguise text.
const nickname = { type: 'string', maxLength: 64, pattern: '^[^\\p{Cc}\\p{Cs}\\p{Bidi_C}]*$' } as const
// A URL that is safe to put in HTML or a header as it is: no spaces, quotes or angle brackets.
const headPic = { type: 'string', maxLength: 512, pattern: '^(https://[^\\s"\'<>\\\\`\\p{Cc}\\p{Cs}]+)?$' } as const

const thirdLoginBody = {
  type: 'object',
  required: ['code'],
  properties: {
    code: { ...codeString, minLength: 1 },
    // Empty means "not granted": form posts send the field either way.
    phoneCode: codeString,
    nickname,
    head_pic: headPic
  }
} as const

const phoneSchema = {
  type: ['object', 'null'],
  required: ['phoneNumber', 'purePhoneNumber', 'countryCode'],
  properties: { phoneNumber: { type: 'string' }, purePhoneNumber: { type: 'string' }, countryCode: { type: 'string' } }
} as const

const userSchema = {
  type: 'object',
  required: ['openid', 'unionid', 'nickname', 'head_pic', 'phone'],
  properties: {
    openid: { type: 'string' },
    unionid: { type: ['string', 'null'] },
    nickname: { type: ['string', 'null'] },
    head_pic: { type: ['string', 'null'] },
    phone: phoneSchema
  }
} as const

const errorBody = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, wechat_errcode: { type: 'integer' } }
} as const

const errorResponses = { '4xx': errorBody, '5xx': errorBody }

interface ThirdLoginBody { code: string, phoneCode?: string, nickname?: string, head_pic?: string }

function publicUser (u: UserRecord): object {
  return { openid: u.openid, unionid: u.unionid, nickname: u.nickname, head_pic: u.head_pic, phone: u.phone }
}

/** A store call; a Redis outage becomes a clean 503 instead of a 500. */
async function stored<T> (op: Promise<T>): Promise<T> {
  try {
    return await op
  } catch (err) {
    if (err instanceof ServiceError) throw err
    throw errors.storeUnavailable()
  }
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

export default async function apiRoutes (app: FastifyInstance, { config, metrics }: { config: LoginConfig, metrics: LoginMetrics }): Promise<void> {
  const store = app.redis === null ? undefined : nodeRedisRateLimitStore(app.redis.cmd, `${config.redisKeyPrefix}ratelimit:`)

  // Per client IP, on every /api route. A Redis outage does not lock everyone out of logging in.
  await app.register(rateLimit, {
    global: true,
    max: config.ipRateLimitMax,
    timeWindow: config.ipRateLimitWindowSeconds * 1000,
    // Only an address: the trusted hops decide it, and a client's string never becomes a key.
    keyGenerator: (request: FastifyRequest) => `ip:${clientAddress(request.ip, request.socket.remoteAddress)}`,
    skipOnError: true,
    ...(store !== undefined ? { store: store as unknown as RateLimitPluginOptions['store'] } : {}),
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) => {
      metrics.rateLimited.inc({ scope: 'ip' })
      return errors.ipRateLimited(Math.max(1, Math.ceil(context.ttl / 1000)))
    }
  })

  app.decorateRequest('phoneLimitKey', '')
  app.decorateRequest('session', null)

  const phoneLimiter = app.createRateLimit({
    max: config.phoneRateLimitMax,
    timeWindow: config.phoneRateLimitWindowSeconds * 1000,
    keyGenerator: (request: FastifyRequest) => request.phoneLimitKey,
    skipOnError: false
  })

  /** The per-user limit: counts this exchange, or refuses it before WeChat is called. */
  async function checkPhoneLimit (request: FastifyRequest, reply: FastifyReply, openid: string): Promise<void> {
    request.phoneLimitKey = `phone:${config.appid}:${openid}`
    let r
    try {
      r = await phoneLimiter(request)
    } catch {
      throw errors.storeUnavailable()
    }
    if (r.isAllowed) return
    reply.header('x-ratelimit-limit', r.max)
    reply.header('x-ratelimit-remaining', r.remaining)
    reply.header('x-ratelimit-reset', r.ttlInSeconds)
    if (r.isExceeded) {
      metrics.rateLimited.inc({ scope: 'user' })
      throw errors.rateLimited(Math.max(1, r.ttlInSeconds))
    }
  }

  async function exchangePhone (request: FastifyRequest, reply: FastifyReply, openid: string, phoneCode: string): Promise<PhoneInfo> {
    await checkPhoneLimit(request, reply, openid)
    try {
      const phone = await app.phones.exchange(openid, phoneCode)
      metrics.phoneExchanges.inc({ result: 'ok' })
      request.log.info({ phone: maskPhone(phone.purePhoneNumber) }, 'phone number exchanged')
      return phone
    } catch (err) {
      const se = toServiceError(err)
      request.log.warn({ error: se.code, wechat_errcode: se.wechatErrcode, detail: se.detail }, 'phone exchange failed')
      metrics.phoneExchanges.inc({ result: se.code })
      if (se.code === 'rate_limited') metrics.rateLimited.inc({ scope: 'user' })
      throw se
    }
  }

  async function requireSession (request: FastifyRequest): Promise<void> {
    const token = bearer(request.headers.authorization)
    if (token === null) throw errors.unauthorized()
    const hash = hashSessionToken(token)
    const session = await stored(app.users.getSession(hash))
    if (session === null || session.appid !== config.appid) throw errors.unauthorized()
    request.session = { ...session, hash }
  }

  const security = [{ session: [] }]

  app.post<{ Body: ThirdLoginBody }>('/user/thirdLogin', {
    schema: {
      summary: 'Log in with wx.login()\'s code and, optionally, the phone button\'s phoneCode',
      consumes: ['application/json', 'application/x-www-form-urlencoded'],
      body: thirdLoginBody,
      response: {
        200: {
          type: 'object',
          required: ['token', 'expires_in', 'is_new_user', 'user', 'phone_error'],
          properties: {
            token: { type: 'string' },
            expires_in: { type: 'integer' },
            is_new_user: { type: 'boolean' },
            user: userSchema,
            phone_error: { type: ['object', 'null'], properties: { error: { type: 'string' }, message: { type: 'string' }, wechat_errcode: { type: 'integer' } } }
          }
        },
        ...errorResponses
      }
    },
    onError: async (_request, _reply, error) => {
      metrics.logins.inc({ result: toServiceError(error).code })
    }
  }, async (request, reply) => {
    const { code, phoneCode, nickname, head_pic: headPic } = request.body
    // Before the code is spent: with the store down, the login could not be saved anyway.
    if (app.storeProblem() !== undefined) throw errors.storeUnavailable()
    let session
    try {
      session = await app.broker.code2session(config.appid, code)
    } catch (err) {
      throw fromBroker(err)
    }
    const patch: UserPatch = {}
    if (session.unionid !== null) patch.unionid = session.unionid
    if (nickname !== undefined && nickname !== '') patch.nickname = nickname
    if (headPic !== undefined && headPic !== '') patch.head_pic = headPic

    let phoneError: object | null = null
    if (phoneCode !== undefined && phoneCode !== '') {
      try {
        patch.phone = await exchangePhone(request, reply, session.openid, phoneCode)
      } catch (err) {
        const se = toServiceError(err)
        // Over the limit: refuse the request. Anything else: log in without a new phone.
        if (se.code === 'rate_limited' || se.code === 'store_unavailable') throw se
        phoneError = se.toJSON()
      }
    }

    const { user, isNew } = await stored(app.users.upsertUser(config.appid, session.openid, patch))
    const { token, hash } = newSessionToken()
    await stored(app.users.createSession(hash, { appid: config.appid, openid: session.openid }, config.sessionTtlSeconds))
    metrics.logins.inc({ result: 'ok' })
    reply.header('cache-control', 'no-store')
    return { token, expires_in: config.sessionTtlSeconds, is_new_user: isNew, user: publicUser(user), phone_error: phoneError }
  })

  app.get('/user/me', {
    schema: { summary: 'The logged-in user', security, response: { 200: userSchema, ...errorResponses } },
    preValidation: requireSession
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const s = request.session as SessionRecord
    const user = await stored(app.users.getUser(s.appid, s.openid))
    if (user === null) throw errors.unauthorized()
    return publicUser(user)
  })

  app.post<{ Body: { phoneCode: string } }>('/user/phone', {
    schema: {
      summary: 'Set the user\'s phone number from a phoneCode',
      security,
      body: { type: 'object', required: ['phoneCode'], additionalProperties: false, properties: { phoneCode: { ...codeString, minLength: 1 } } },
      response: { 200: userSchema, ...errorResponses }
    },
    preValidation: requireSession
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const s = request.session as SessionRecord
    const phone = await exchangePhone(request, reply, s.openid, request.body.phoneCode)
    const { user } = await stored(app.users.upsertUser(s.appid, s.openid, { phone }))
    return publicUser(user)
  })

  app.post('/user/logout', {
    schema: { summary: 'End the session: the token stops working', security, response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses } },
    preValidation: requireSession
  }, async (request, reply) => {
    await stored(app.users.deleteSession((request.session as { hash: string }).hash))
    return reply.code(204).send()
  })
}
