import type { FastifyInstance } from 'fastify'
import { APPID_PATTERN } from '@wxlogin/service-kit'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'
import { scrubRidRecord } from '../wechat/scrub.js'
import { appidParams, errorBody, type AppParams } from './common.js'

const counts = {
  type: 'object',
  properties: { daily_limit: { type: 'integer' }, used: { type: 'integer' }, remain: { type: 'integer' } }
} as const
const rate = {
  type: 'object',
  properties: { call_count: { type: 'integer' }, refresh_second: { type: 'integer' } }
} as const

const quotaBody = {
  type: 'object',
  required: ['quota'],
  properties: { quota: counts, rate_limit: rate, component_rate_limit: rate }
} as const

const ridBody = {
  type: 'object',
  required: ['request'],
  properties: {
    request: {
      type: 'object',
      description:
        'The request behind the rid. Tokens, secrets, codes, tickets and phone numbers in it are replaced by ***.',
      properties: {
        invoke_time: { type: 'integer' },
        cost_in_ms: { type: 'integer' },
        request_url: { type: 'string' },
        request_body: { type: 'string' },
        response_body: { type: 'string' },
        client_ip: { type: 'string' }
      }
    }
  }
} as const

export default async function quotaRoutes (
  app: FastifyInstance,
  { metrics }: { metrics: BrokerMetrics }
): Promise<void> {
  const security = [{ bearer: [] }]

  app.get<AppParams & { Querystring: { cgi_path: string } }>(
    '/apps/:appid/quota',
    {
      schema: {
        summary: "Today's quota of one WeChat API for this app (openapi/quota/get)",
        security,
        params: appidParams,
        querystring: {
          type: 'object',
          required: ['cgi_path'],
          additionalProperties: false,
          properties: {
            cgi_path: {
              type: 'string',
              pattern: '^/[A-Za-z0-9_./-]{1,200}$',
              description: 'e.g. /cgi-bin/message/custom/send'
            }
          }
        },
        response: { 200: quotaBody, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      const { appid } = request.params
      const body = await app.withAccessToken(
        appid,
        async token => await app.wechat.quota(token, request.query.cgi_path)
      )
      reply.header('cache-control', 'no-store')
      return body
    }
  )

  app.get<AppParams & { Params: { rid: string } }>(
    '/apps/:appid/rid/:rid',
    {
      schema: {
        summary: "What the request behind a WeChat error's rid sent and got (openapi/rid/get): who caused a 40001",
        security,
        params: {
          type: 'object',
          required: ['appid', 'rid'],
          properties: {
            appid: { type: 'string', pattern: APPID_PATTERN },
            rid: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' }
          }
        },
        response: { 200: ridBody, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      const { appid, rid } = request.params
      const body = await app.withAccessToken(appid, async token => await app.wechat.rid(token, rid))
      reply.header('cache-control', 'no-store')
      return { request: scrubRidRecord(body.request) }
    }
  )

  app.post<AppParams>(
    '/apps/:appid/quota/clear',
    {
      schema: {
        summary:
          "Reset the app's daily API quotas with the appsecret (clear_quota/v2; 10 a month). Admin clients only.",
        description: "Works when the token endpoint's own quota is spent, since it needs no access_token.",
        security,
        params: appidParams,
        response: {
          200: { type: 'object', required: ['cleared'], properties: { cleared: { type: 'boolean' } } },
          '4xx': errorBody,
          '5xx': errorBody
        }
      },
      onRequest: app.authorizeApp
    },
    async request => {
      const { appid } = request.params
      const client = request.brokerClient
      if (client === null || !client.admin) throw errors.notAdmin(client?.name ?? 'unknown')
      try {
        await app.wechat.clearQuota(app.tokens.getApp(appid) as WechatAppConfig)
      } catch (err) {
        const errcode = (err as { wechatErrcode?: number }).wechatErrcode
        metrics.quotaClears.inc({ appid, result: errcode !== undefined ? String(errcode) : 'error' })
        request.log.warn({ appid, client: client.name, wechat_errcode: errcode }, 'quota reset failed')
        throw err
      }
      metrics.quotaClears.inc({ appid, result: 'ok' })
      request.log.warn(
        { appid, client: client.name },
        "quota reset: WeChat's daily API quotas of the app are cleared (10 resets a month)"
      )
      return { cleared: true }
    }
  )
}
