import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Got } from 'got'
import type { BrokerClientConfig } from '../config.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'
import { TOKEN_REJECTED } from '../wechat/wechat-client.js'
import { appidParams, errorBody, type AppParams } from './common.js'

/** A request body (a media upload) and an answer (a QR-code image) the gateway carries at most. */
const BODY_LIMIT = 10 * 1024 * 1024
const ANSWER_LIMIT = 20 * 1024 * 1024
/** What of WeChat's answer goes back: its type and disposition (a file's name); never a hop-by-hop header. */
const ANSWER_HEADERS = ['content-type', 'content-disposition']

/** The client's `apis` entry that allows `path` ('/wxa/msg_sec_check', '/cgi-bin/message/*'); undefined: none. */
export function allowedBy (client: BrokerClientConfig, path: string): string | undefined {
  return client.apis?.find(entry => (entry.endsWith('*') ? path.startsWith(entry.slice(0, -1)) : path === entry))
}

/** WeChat's errcode in a JSON answer, if it is one. */
function errcodeOf (type: string | undefined, body: Buffer): number | undefined {
  if (type?.includes('json') !== true && body[0] !== 0x7b) return undefined
  try {
    const v = JSON.parse(body.toString('utf8')) as { errcode?: unknown }
    return typeof v.errcode === 'number' ? v.errcode : undefined
  } catch {
    return undefined
  }
}

interface GatewayOptions {
  got: Got
  wechatBaseUrl: string
  timeoutMs: number
  metrics: BrokerMetrics
}

/**
 * The WeChat API gateway: ANY /v1/apps/{appid}/wechat/<WeChat path>, with a client token whose
 * `apis` allow the path. The call goes on to WeChat with the app's current access_token (a token
 * the caller put in the query is dropped), query and body as they came; WeChat's answer comes
 * back as it is (binary answers too), never with the token. A 40001, 42001 or 40014 is recovered
 * once, centrally (compare-and-refresh, one refresh cluster-wide), and the call sent again: WeChat
 * did not process a call it refused for its token. Logs name the path and WeChat's errcode only.
 */
export default async function gatewayRoutes (app: FastifyInstance, opts: GatewayOptions): Promise<void> {
  // Every body as bytes, whatever its type (JSON, a multipart upload): passed on untouched.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) => {
    done(null, body)
  })

  async function send (
    method: string,
    path: string,
    query: URLSearchParams,
    token: string,
    body: Buffer | undefined,
    type: string | undefined
  ): Promise<{ status: number, headers: Record<string, unknown>, body: Buffer }> {
    const search = new URLSearchParams(query)
    search.set('access_token', token)
    const res = await opts.got(`${opts.wechatBaseUrl}${path}`, {
      method: method as 'GET',
      searchParams: search,
      ...(body === undefined || body.length === 0
        ? {}
        : { body, headers: { 'content-type': type ?? 'application/octet-stream' } }),
      responseType: 'buffer',
      throwHttpErrors: false,
      followRedirect: false,
      timeout: { request: opts.timeoutMs }
    })
    if (res.body.length > ANSWER_LIMIT) {
      throw errors.upstreamUnavailable('the answer is larger than the gateway carries')
    }
    return { status: res.statusCode, headers: res.headers, body: res.body }
  }

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
    handler: async (request, reply: FastifyReply) => {
      const client = request.brokerClient as BrokerClientConfig
      const { appid } = request.params
      const path = `/${request.params['*']}`
      const api = allowedBy(client, path)
      if (api === undefined || /(^|\/)\.\.?(\/|$)/.test(path)) {
        opts.metrics.gatewayRequests.inc({ client: client.name, api: 'none', result: 'forbidden' })
        throw errors.apiNotAllowed(client.name, path)
      }
      const query = new URLSearchParams(request.url.split('?')[1] ?? '')
      query.delete('access_token')
      const body = Buffer.isBuffer(request.body) ? request.body : undefined
      const type = request.headers['content-type']
      let served = await app.tokens.getToken(appid)
      let answer
      try {
        answer = await send(request.method, path, query, served.record.token, body, type)
        let errcode = errcodeOf(answer.headers['content-type'] as string | undefined, answer.body)
        if (errcode !== undefined && TOKEN_REJECTED.has(errcode)) {
          // Refused for its token: replaced once, cluster-wide, and sent again.
          served = await app.tokens.invalidate(appid, served.record.token, client.name)
          answer = await send(request.method, path, query, served.record.token, body, type)
          errcode = errcodeOf(answer.headers['content-type'] as string | undefined, answer.body)
        }
        const result =
          answer.status >= 400
            ? `http_${answer.status}`
            : errcode === undefined || errcode === 0
              ? 'ok'
              : String(errcode)
        opts.metrics.gatewayRequests.inc({ client: client.name, api, result })
        request.log.info(
          { appid, client: client.name, path, status: answer.status, wechat_errcode: errcode },
          'gateway call'
        )
      } catch (err) {
        const code = (err as { code?: string, name?: string }).name === 'TimeoutError' ? 'timeout' : 'network_error'
        opts.metrics.gatewayRequests.inc({ client: client.name, api, result: code })
        if ((err as { statusCode?: number }).statusCode !== undefined) throw err
        // got's error carries the URL, and the token in it: only the kind leaves.
        throw errors.upstreamUnavailable(code === 'timeout' ? 'timed out' : 'network error')
      }
      reply.code(answer.status)
      for (const h of ANSWER_HEADERS) {
        const v = answer.headers[h]
        if (typeof v === 'string') reply.header(h, v)
      }
      reply.header('cache-control', 'no-store')
      return await reply.send(answer.body)
    }
  })
}
