import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { APPID_PATTERN, DEADLINE_HEADER } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { WechatAppConfig } from '../config.js'
import type { ServedToken } from '../token-manager.js'

const appidParams = {
  type: 'object',
  required: ['appid'],
  properties: { appid: { type: 'string', pattern: APPID_PATTERN } }
} as const

const errorBody = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, wechat_errcode: { type: 'integer' } }
} as const

const tokenBody = {
  type: 'object',
  required: ['access_token', 'expires_in', 'expires_at'],
  properties: {
    access_token: { type: 'string' },
    expires_in: { type: 'integer', description: 'whole seconds left' },
    expires_at: { type: 'string', format: 'date-time' }
  }
} as const

// A token's expiry never changes, so its ISO form is computed once per token, not per request.
const isoCache = new WeakMap<object, string>()

function sendToken (reply: FastifyReply, served: ServedToken): object {
  const { record } = served
  let iso = isoCache.get(record)
  if (iso === undefined) {
    iso = new Date(record.expiresAt).toISOString()
    isoCache.set(record, iso)
  }
  reply.header('cache-control', 'no-store')
  return {
    access_token: record.token,
    expires_in: Math.max(0, Math.floor((record.expiresAt - Date.now()) / 1000)),
    expires_at: iso
  }
}

interface AppParams { Params: { appid: string } }

/** What is kept back for the answer itself to be written and travel. */
const ANSWER_MARGIN_MS = 50

/** When this request's caller stops waiting (Unix ms); Infinity when it did not say. */
function callerDeadline (request: FastifyRequest): number {
  const raw = request.headers[DEADLINE_HEADER]
  if (typeof raw !== 'string' || !/^\d{1,7}$/.test(raw)) return Infinity
  return Date.now() + Number(raw) - ANSWER_MARGIN_MS
}

/**
 * Waits for `work` no longer than the caller does. What it waits for (a token refresh) goes on
 * and serves the next caller; only this answer gives up.
 */
async function withinDeadline<T> (work: Promise<T>, deadline: number, appid: string): Promise<T> {
  if (deadline === Infinity) return await work
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(errors.tokenUnavailable(appid)), Math.max(0, deadline - Date.now()))
  })
  try {
    return await Promise.race([work, expired])
  } finally {
    clearTimeout(timer)
  }
}

export default async function v1Routes (app: FastifyInstance): Promise<void> {
  const security = [{ bearer: [] }]

  app.get<AppParams>('/apps/:appid/access-token', {
    schema: { summary: 'The current access_token of an app', params: appidParams, response: { 200: tokenBody, '4xx': errorBody, '5xx': errorBody }, security },
    onRequest: app.authorizeApp
  }, async (request, reply) => {
    const { appid } = request.params
    return sendToken(reply, await withinDeadline(app.tokens.getToken(appid), callerDeadline(request), appid))
  })

  app.post<AppParams & { Body: { access_token: string } }>('/apps/:appid/access-token/invalidate', {
    schema: {
      summary: 'Report a token WeChat rejected; get a different, current one',
      security,
      params: appidParams,
      body: {
        type: 'object',
        required: ['access_token'],
        additionalProperties: false,
        properties: { access_token: { type: 'string', minLength: 1, maxLength: 2048 } }
      },
      response: { 200: tokenBody, '4xx': errorBody, '5xx': errorBody },

    },
    onRequest: app.authorizeApp
  }, async (request, reply) => {
    const { appid } = request.params
    const served = await withinDeadline(app.tokens.invalidate(appid, request.body.access_token), callerDeadline(request), appid)
    request.log.info({ appid: request.params.appid, client: request.brokerClient?.name, source: served.source }, 'token invalidation')
    return sendToken(reply, served)
  })

  app.post<AppParams & { Body: { js_code: string } }>('/apps/:appid/code2session', {
    schema: {
      summary: 'Exchange a wx.login() code for openid and unionid',
      security,
      params: appidParams,
      body: {
        type: 'object',
        required: ['js_code'],
        additionalProperties: false,
        properties: { js_code: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' } }
      },
      response: {
        200: { type: 'object', required: ['openid', 'unionid'], properties: { openid: { type: 'string' }, unionid: { type: ['string', 'null'] } } },
        '4xx': errorBody,
        '5xx': errorBody
      },

    },
    onRequest: app.authorizeApp
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    // authorizeApp has established that the app exists.
    const wxApp = app.tokens.getApp(request.params.appid) as WechatAppConfig
    return await app.wechat.code2session(wxApp, request.body.js_code, callerDeadline(request))
  })
}
