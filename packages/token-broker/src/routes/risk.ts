import type { FastifyInstance } from 'fastify'
import type { WechatAppConfig } from '../config.js'
import { appidParams, callerDeadline, errorBody, type AppParams } from './common.js'

interface RiskBody {
  openid: string
  scene: 0 | 1
  client_ip: string
}

/**
 * POST /v1/apps/{appid}/user-risk-rank: WeChat's getuserriskrank with the app's own token (the
 * login-api asks it for a login that would create a user, under LOGIN_RISK_POLICY).
 */
export default async function riskRoutes (app: FastifyInstance): Promise<void> {
  app.post<AppParams & { Body: RiskBody }>(
    '/apps/:appid/user-risk-rank',
    {
      schema: {
        summary: "WeChat's risk rank of a user (getuserriskrank): 0 lowest to 4 highest",
        security: [{ bearer: [] }],
        params: appidParams,
        body: {
          type: 'object',
          required: ['openid', 'scene', 'client_ip'],
          additionalProperties: false,
          properties: {
            openid: { type: 'string', pattern: '^[\\w-]{1,128}$' },
            scene: { type: 'integer', enum: [0, 1], description: '0: registration, 1: marketing' },
            client_ip: {
              type: 'string',
              minLength: 2,
              maxLength: 64,
              pattern: '^[0-9a-fA-F.:]+$',
              description: "The user's IP address as the login-api saw it"
            }
          }
        },
        response: {
          200: { type: 'object', required: ['risk_rank'], properties: { risk_rank: { type: 'integer' } } },
          '4xx': errorBody,
          '5xx': errorBody
        }
      },
      onRequest: app.authorizeApp
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      // authorizeApp has established that the app exists.
      const { appid } = app.tokens.getApp(request.params.appid) as WechatAppConfig
      const { openid, scene, client_ip: clientIp } = request.body
      const deadline = callerDeadline(request)
      const rank = await app.withAccessToken(
        appid,
        async token => await app.phoneCalls.riskRank(appid, token, { openid, scene, clientIp }, deadline)
      )
      return { risk_rank: rank }
    }
  )
}
