import type { FastifyInstance } from 'fastify'
import { TICKET_TYPES } from '../plugins/tokens.js'
import type { TicketType } from '../wechat/wechat-client.js'
import type { TokenCallers } from '../gateway/callers.js'

/**
 * `GET /cgi-bin/ticket/getticket` as WeChat serves it, answered from the broker's ticket
 * manager, so JS-SDK libraries (wechat-jssdk's `ticketUrl`) share the broker's one ticket. The
 * access_token is the credential: whoever holds a token the broker serves could ask WeChat for
 * the same ticket with it; a surrogate the broker issued works too. A token the broker does not
 * serve, or no longer serves, is refused with WeChat's own 40001 (the caller then asks the token
 * URL again); an expired surrogate with 42001.
 */
export default async function wechatTicketRoutes (
  app: FastifyInstance,
  { callers }: { callers: TokenCallers }
): Promise<void> {
  app.setErrorHandler(async (_err, request, reply) => {
    request.log.warn('WeChat-shaped ticket request failed')
    return await reply
      .code(200)
      .send({ errcode: -1, errmsg: 'system error: the broker cannot get a ticket now; retry' })
  })

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
      const caller = await callers.of(token)
      if (caller === 'expired') return { errcode: 42001, errmsg: 'access_token expired' }
      if (caller === null) {
        app.authFailures.record('/cgi-bin/ticket/getticket', 40001, { ip: request.ip })
        return { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' }
      }
      const appid = caller.appid
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
