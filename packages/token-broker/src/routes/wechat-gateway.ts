import type { FastifyInstance } from 'fastify'
import { toServiceError } from '@wxlogin/service-kit'
import type { BrokerClientConfig } from '../config.js'
import type { BrokerMetrics } from '../metrics.js'
import { TokenCallers } from '../gateway/callers.js'
import { acceptRawBodies, allowedBy, type Gateway } from '../gateway/forward.js'
import { forward } from './gateway.js'

/** The WeChat path prefixes the broker carries for SDKs whose base URL points at it. */
export const WECHAT_PREFIXES = [
  'cgi-bin',
  'wxa',
  'wxaapi',
  'datacube',
  'customservice',
  'product',
  'shop',
  'union',
  'card'
]

interface Options {
  gateway: Gateway
  callers: TokenCallers
  clients: BrokerClientConfig[]
  metrics: BrokerMetrics
}

/**
 * The gateway in WeChat's own shape: an SDK whose base URL is the broker calls `/cgi-bin/...`,
 * `/wxa/...` with the access_token the broker handed it (a surrogate, or the app's current real
 * token), and the call goes on as through `/v1/apps/{appid}/wechat/...`. Routes the broker
 * answers itself (`/cgi-bin/token`, `stable_token`, `ticket/getticket`) win over these. Refusals
 * come as WeChat's errcodes with HTTP 200, as WeChat answers, so the SDK handles them as its own:
 * 41001 no token, 40001 a token the broker does not know, 42001 an expired surrogate, 40125 a
 * path outside the client's `apis`.
 */
export default async function wechatGatewayRoutes (app: FastifyInstance, opts: Options): Promise<void> {
  acceptRawBodies(app)
  app.setErrorHandler(async (err, request, reply) => {
    const se = toServiceError(err)
    if (se.statusCode >= 500) request.log.warn({ error: se.code }, 'WeChat-shaped gateway call failed')
    const errcode = se.wechatErrcode ?? -1
    return await reply.code(200).send({ errcode, errmsg: errcode === -1 ? `system error: ${se.message}` : se.message })
  })

  const refuse = (route: string, ip: string, errcode: number, errmsg: string): object => {
    app.authFailures.record(route, errcode, { ip })
    return { errcode, errmsg }
  }

  for (const top of WECHAT_PREFIXES) {
    app.route<{ Params: { '*': string }, Querystring: Record<string, string | string[]> }>({
      method: ['GET', 'POST'],
      url: `/${top}/*`,
      schema: { hide: true },
      handler: async (request, reply) => {
        const route = `/${top}/*`
        const path = `/${top}/${request.params['*']}`
        const query = new URLSearchParams(request.url.split('?')[1] ?? '')
        const token = query.get('access_token')
        query.delete('access_token')
        if (token === null || token === '') return refuse(route, request.ip, 41001, 'access_token missing')
        const caller = await opts.callers.of(token)
        if (caller === 'expired') return refuse(route, request.ip, 42001, 'access_token expired')
        if (caller === null) {
          return refuse(route, request.ip, 40001, 'invalid credential, access_token is invalid or not latest')
        }
        const client = caller.client ?? TokenCallers.realTokenClient(opts.clients, caller.appid, path)
        const api = client === undefined ? undefined : allowedBy(client, path)
        if (client === undefined || api === undefined) {
          opts.metrics.gatewayRequests.inc({ client: client?.name ?? 'real_token', api: 'none', result: 'forbidden' })
          return refuse(route, request.ip, 40125, `api unauthorized: ${path.slice(0, 200)} is not in the client's apis`)
        }
        return await forward(opts.gateway, request, reply, { appid: caller.appid, client, api, path, query })
      }
    })
  }
}
