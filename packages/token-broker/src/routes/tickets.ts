import type { FastifyInstance } from 'fastify'
import { APPID_PATTERN } from '@wxlogin/service-kit'
import { jssdkConfig } from '../credentials/jssdk.js'
import type { TicketType } from '../wechat/wechat-client.js'
import { TICKET_TYPES } from '../plugins/tokens.js'
import {
  appidParams,
  callerDeadline,
  errorBody,
  expiringBody,
  sendExpiring,
  withinDeadline,
  type AppParams
} from './common.js'

const ticketBody = expiringBody('ticket')

const signatureBody = {
  type: 'object',
  required: ['appId', 'timestamp', 'nonceStr', 'signature'],
  properties: {
    appId: { type: 'string' },
    timestamp: { type: 'integer', description: 'Unix seconds' },
    nonceStr: { type: 'string' },
    signature: { type: 'string', description: 'hex SHA-1, as wx.config expects it' }
  }
} as const

export default async function ticketRoutes (app: FastifyInstance): Promise<void> {
  const security = [{ bearer: [] }]

  app.get<{ Params: { appid: string, type: TicketType } }>(
    '/apps/:appid/tickets/:type',
    {
      schema: {
        summary: 'The current JS-SDK (jsapi) or card (wx_card) ticket of an app',
        description: 'Kept warm like the access_token: one fetch cluster-wide, refreshed ahead of expiry.',
        security,
        params: {
          type: 'object',
          required: ['appid', 'type'],
          properties: {
            appid: { type: 'string', pattern: APPID_PATTERN },
            type: { type: 'string', enum: [...TICKET_TYPES] }
          }
        },
        response: { 200: ticketBody, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      const { appid, type } = request.params
      return sendExpiring(
        reply,
        'ticket',
        await withinDeadline(app.tickets[type].getToken(appid), callerDeadline(request), appid)
      )
    }
  )

  app.post<AppParams & { Body: { url: string } }>(
    '/apps/:appid/jssdk-signature',
    {
      schema: {
        summary: "A signed wx.config for a page, by WeChat's JS-SDK algorithm",
        description: 'The page URL as the browser has it (location.href); a #fragment is dropped before signing.',
        security,
        params: appidParams,
        body: {
          type: 'object',
          required: ['url'],
          additionalProperties: false,
          properties: { url: { type: 'string', minLength: 8, maxLength: 2048, pattern: '^https?://[^\\s]+$' } }
        },
        response: { 200: signatureBody, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      const { appid } = request.params
      const { record } = await withinDeadline(app.tickets.jsapi.getToken(appid), callerDeadline(request), appid)
      reply.header('cache-control', 'no-store')
      return jssdkConfig(appid, record.token, request.body.url)
    }
  )
}
