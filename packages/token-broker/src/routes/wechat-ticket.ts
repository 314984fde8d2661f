import type { FastifyInstance } from 'fastify'
import { sha256Hex } from '@wxlogin/service-kit'
import { timingSafeEqual } from 'node:crypto'
import { TICKET_TYPES } from '../plugins/tokens.js'
import type { TicketType } from '../wechat/wechat-client.js'

const sameToken = (a: string, b: string): boolean =>
  timingSafeEqual(Buffer.from(sha256Hex(a), 'hex'), Buffer.from(sha256Hex(b), 'hex'))

/**
 * `GET /cgi-bin/ticket/getticket` as WeChat serves it, answered from the broker's ticket
 * manager, so JS-SDK libraries (wechat-jssdk's `ticketUrl`) share the broker's one ticket. The
 * access_token is the credential: whoever holds a token the broker serves could ask WeChat for
 * the same ticket with it. A token the broker does not serve, or no longer serves, is refused
 * with WeChat's own 40001 (the caller then asks the token URL again).
 */
export default async function wechatTicketRoutes (
  app: FastifyInstance,
  { appids }: { appids: string[] }
): Promise<void> {
  app.setErrorHandler(async (_err, request, reply) => {
    request.log.warn('WeChat-shaped ticket request failed')
    return await reply
      .code(200)
      .send({ errcode: -1, errmsg: 'system error: the broker cannot get a ticket now; retry' })
  })

  /** The app whose current token this is; undefined when the broker serves it for none. */
  async function appOf (token: string): Promise<string | undefined> {
    let found: string | undefined
    for (const appid of appids) {
      const current = await app.tokens.peek(appid)
      // Every app is compared, found or not: the time taken says nothing about which.
      if (
        current !== null &&
        current.expiresAt > Date.now() &&
        sameToken(current.token, token) &&
        found === undefined
      ) {
        found = appid
      }
    }
    return found
  }

  app.get<{ Querystring: { access_token?: string, type?: string } }>(
    '/ticket/getticket',
    {
      schema: {
        summary:
          "WeChat's GET /cgi-bin/ticket/getticket, answered with the broker's ticket for the app of the access_token",
        querystring: {
          type: 'object',
          properties: { access_token: { type: 'string', maxLength: 2048 }, type: { type: 'string', maxLength: 32 } }
        },
        response: {
          200: {
            type: 'object',
            description: "WeChat's shape (always HTTP 200)",
            properties: {
              errcode: { type: 'integer' },
              errmsg: { type: 'string' },
              ticket: { type: 'string' },
              expires_in: { type: 'integer' }
            }
          }
        }
      }
    },
    async (request, reply) => {
      const { access_token: token, type } = request.query
      if (token === undefined || token === '') return { errcode: 41001, errmsg: 'access_token missing' }
      const appid = await appOf(token)
      if (appid === undefined) {
        app.authFailures.record('/cgi-bin/ticket/getticket', 40001, { ip: request.ip })
        return { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' }
      }
      if (!TICKET_TYPES.includes(type as TicketType)) {
        return { errcode: 40097, errmsg: 'invalid args: type must be jsapi or wx_card' }
      }
      const served = await app.tickets[type as TicketType].getToken(appid)
      reply.header('cache-control', 'no-store')
      return {
        errcode: 0,
        errmsg: 'ok',
        ticket: served.record.token,
        expires_in: Math.max(0, Math.floor((served.record.expiresAt - Date.now()) / 1000))
      }
    }
  )
}
