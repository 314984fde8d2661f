import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { BrokerClientConfig } from '../config.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'
import { acceptRawBodies, allowedBy, type Gateway, type GatewayCall } from '../gateway/forward.js'
import { appidParams, errorBody, type AppParams } from './common.js'

/**
 * The request sent on through the gateway (its method, body and type as they came), and WeChat's
 * answer to the caller: its status, type and disposition, never cached on the way.
 */
export async function forward (
  gateway: Gateway,
  request: FastifyRequest,
  reply: FastifyReply,
  to: Pick<GatewayCall, 'appid' | 'client' | 'api' | 'path' | 'query'>
): Promise<FastifyReply> {
  const answer = await gateway.call({
    ...to,
    method: request.method,
    body: Buffer.isBuffer(request.body) ? request.body : undefined,
    type: request.headers['content-type'],
    log: request.log
  })
  reply.code(answer.status)
  for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value)
  reply.header('cache-control', 'no-store')
  return await reply.send(answer.body)
}

/**
 * The WeChat API gateway: ANY /v1/apps/{appid}/wechat/<WeChat path>, with a client token whose
 * `apis` allow the path. The call goes on to WeChat with the app's current access_token (a token
 * the caller put in the query is dropped), query and body as they came; WeChat's answer comes
 * back as it is (binary answers streamed), never with the token (gateway/forward.ts).
 */
export default async function gatewayRoutes (
  app: FastifyInstance,
  opts: { gateway: Gateway, metrics: BrokerMetrics }
): Promise<void> {
  acceptRawBodies(app)

  app.route<AppParams & { Params: { '*': string } }>({
    method: ['GET', 'POST'],
    url: '/apps/:appid/wechat/*',
    schema: {
      summary: "Call a WeChat server API with the app's token (the client's apis allow the path)",
      security: [{ bearer: [] }],
      params: { ...appidParams, properties: { ...appidParams.properties, '*': { type: 'string' } } },
      response: { '4xx': errorBody, '5xx': errorBody }
    },
    onRequest: app.authorizeApp,
    handler: async (request, reply) => {
      const client = request.brokerClient as BrokerClientConfig
      const path = `/${request.params['*']}`
      const api = allowedBy(client, path)
      if (api === undefined) {
        opts.metrics.gatewayRequests.inc({ client: client.name, api: 'none', result: 'forbidden' })
        throw errors.apiNotAllowed(client.name, path)
      }
      const query = new URLSearchParams(request.url.split('?')[1] ?? '')
      query.delete('access_token')
      return await forward(opts.gateway, request, reply, { appid: request.params.appid, client, api, path, query })
    }
  })
}
