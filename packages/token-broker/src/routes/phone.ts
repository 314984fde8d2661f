import type { FastifyInstance } from 'fastify'
import { toServiceError } from '@wxlogin/service-kit'
import type { WechatAppConfig } from '../config.js'
import type { BrokerMetrics } from '../metrics.js'
import type { PhoneInfo } from '../wechat/phone-info.js'
import { appidParams, callerDeadline, errorBody, type AppParams } from './common.js'

interface PhoneBody {
  code: string
  openid?: string
  retry_key_sha256?: string
}

const phoneInfo = {
  type: 'object',
  required: ['phoneNumber', 'purePhoneNumber', 'countryCode'],
  properties: {
    phoneNumber: { type: 'string' },
    purePhoneNumber: { type: 'string' },
    countryCode: { type: 'string' }
  }
} as const

/**
 * POST /v1/apps/{appid}/phone-number: getuserphonenumber where it is billed, with the app's own
 * token (one recovery of a refused token, centrally), once per code cluster-wide, the number kept
 * sealed for the code's life for the same client, retry key and openid (docs/phone-billing.md).
 */
export default async function phoneRoutes (
  app: FastifyInstance,
  { metrics }: { metrics: BrokerMetrics }
): Promise<void> {
  app.post<AppParams & { Body: PhoneBody }>(
    '/apps/:appid/phone-number',
    {
      schema: {
        summary: 'Exchange a phone code (getPhoneNumber) for the phone number',
        security: [{ bearer: [] }],
        params: appidParams,
        body: {
          type: 'object',
          required: ['code'],
          additionalProperties: false,
          properties: {
            code: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
            openid: {
              type: 'string',
              pattern: '^[\\w-]{1,128}$',
              description: 'Sent on to WeChat, and the kept answer is bound to it'
            },
            retry_key_sha256: {
              type: 'string',
              pattern: '^[0-9a-fA-F]{64}$',
              description:
                'The answer is kept (sealed) for the code\'s life and given again only to this client with this ' +
                  'value (and openid)'
            }
          }
        },
        response: {
          200: { type: 'object', required: ['phone_info'], properties: { phone_info: phoneInfo } },
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
      const { appid } = wxApp
      const { code, openid, retry_key_sha256: retryKey } = request.body
      // Kept for a retry, a number WeChat answered is never lost: the exchange runs to its end
      // even when the caller stopped waiting. Without a retry key nobody could have it then.
      const deadline = retryKey === undefined ? callerDeadline(request) : Infinity
      const call = async (): Promise<PhoneInfo> => {
        try {
          const phone = await app.withAccessToken(
            appid,
            async token => await app.phoneCalls.phoneNumber(appid, token, code, openid, deadline)
          )
          metrics.phoneExchanges.inc({ appid, result: 'ok' })
          return phone
        } catch (err) {
          metrics.phoneExchanges.inc({ appid, result: toServiceError(err).code })
          throw err
        }
      }
      if (retryKey === undefined) return { phone_info: await call() }
      const asker = { appid, client: request.brokerClient?.name ?? '', retryKeySha256: retryKey, openid }
      const { answer, kept, unkept } = await app.phoneAnswers.exchange(asker, code, call, callerDeadline(request))
      if (kept) {
        metrics.phoneExchanges.inc({ appid, result: 'kept' })
        request.log.info({ appid, client: asker.client }, 'phone number answered from the kept answer (a retry)')
      }
      if (unkept === true) {
        request.log.warn(
          { appid, client: asker.client },
          'phone number answered without keeping it: the store is unreachable'
        )
      }
      return { phone_info: answer }
    }
  )
}
