import type { FastifyInstance } from 'fastify'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'
import {
  appidParams,
  callerDeadline,
  errorBody,
  sendToken,
  tokenBody,
  withinDeadline,
  type AppParams
} from './common.js'

export default async function v1Routes (app: FastifyInstance): Promise<void> {
  const security = [{ bearer: [] }]
  /** A client handed surrogates never holds the real token, by any route. */
  const realTokenAllowed = async (request: import('fastify').FastifyRequest): Promise<void> => {
    const client = request.brokerClient
    if (client?.tokenForm === 'surrogate') throw errors.surrogateOnly(client.name)
  }

  app.get<AppParams>(
    '/apps/:appid/access-token',
    {
      schema: {
        summary: 'The current access_token of an app',
        params: appidParams,
        response: { 200: tokenBody, '4xx': errorBody, '5xx': errorBody },
        security
      },
      onRequest: app.authorizeApp,
      preHandler: realTokenAllowed
    },
    async (request, reply) => {
      const { appid } = request.params
      // Never a check with WeChat here: a /v1 caller reports a dead token with invalidate, and a
      // caller that reads the token before each of its calls must not wait on WeChat for it.
      return sendToken(reply, await withinDeadline(app.tokens.getToken(appid), callerDeadline(request), appid))
    }
  )

  app.post<AppParams & { Body: { access_token: string } }>(
    '/apps/:appid/access-token/invalidate',
    {
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
        response: { 200: tokenBody, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: app.authorizeApp,
      preHandler: realTokenAllowed
    },
    async (request, reply) => {
      const { appid } = request.params
      const served = await withinDeadline(
        app.tokens.invalidate(appid, request.body.access_token, request.brokerClient?.name),
        callerDeadline(request),
        appid
      )
      request.log.info(
        { appid: request.params.appid, client: request.brokerClient?.name, source: served.source },
        'token invalidation'
      )
      return sendToken(reply, served)
    }
  )

  app.post<AppParams & { Body: { js_code: string, retry_key_sha256?: string } }>(
    '/apps/:appid/code2session',
    {
      schema: {
        summary: 'Exchange a wx.login() code for openid and unionid',
        security,
        params: appidParams,
        body: {
          type: 'object',
          required: ['js_code'],
          additionalProperties: false,
          properties: {
            js_code: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
            retry_key_sha256: {
              type: 'string',
              pattern: '^[0-9a-fA-F]{64}$',
              description:
                "The SHA-256 of the login attempt's retry_key: the answer is kept for the code's life and given " +
                  'again only to this client with this value'
            }
          }
        },
        response: {
          200: {
            type: 'object',
            required: ['openid', 'unionid'],
            properties: { openid: { type: 'string' }, unionid: { type: ['string', 'null'] } }
          },
          '4xx': errorBody,
          '5xx': errorBody
        }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      // authorizeApp has established that the app exists.
      const wxApp = app.tokens.getApp(request.params.appid) as WechatAppConfig
      const { js_code: code, retry_key_sha256: retryKey } = request.body
      const call = async (): Promise<{ openid: string, unionid: string | null }> =>
        await app.wechat.code2session(wxApp, code, callerDeadline(request))
      if (retryKey === undefined) return await call()
      const asker = { appid: wxApp.appid, client: request.brokerClient?.name ?? '', retryKeySha256: retryKey }
      const { answer, kept, unkept } = await app.codeAnswers.exchange(asker, code, call, callerDeadline(request))
      if (kept) {
        request.log.info(
          { appid: wxApp.appid, client: request.brokerClient?.name },
          'code2session answered from the kept answer (a retry)'
        )
      }
      if (unkept === true) {
        request.log.warn(
          { appid: wxApp.appid, client: request.brokerClient?.name },
          'code2session answered without keeping it: the store is unreachable'
        )
      }
      return answer
    }
  )
}
