import { pipeline, Transform, type Readable } from 'node:stream'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Got } from 'got'
import type { BrokerClientConfig } from '../config.js'
import type { TokenManager } from '../credentials/token-manager.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'
import { TOKEN_REJECTED } from '../wechat/wechat-client.js'
import type { GatewayLimits } from './limits.js'
import { inSpan, SpanKind } from '@wxlogin/service-kit'

/** A request body (a media upload) and an answer (a QR-code image) the gateway carries at most. */
export const BODY_LIMIT = 10 * 1024 * 1024
export const ANSWER_LIMIT = 20 * 1024 * 1024
/** What of WeChat's answer goes back: its type and disposition (a file's name); never a hop-by-hop header. */
const ANSWER_HEADERS = ['content-type', 'content-disposition']

/** The client's `apis` entry that allows `path` ('/wxa/msg_sec_check', '/cgi-bin/message/*'); undefined: none. */
export function allowedBy (client: BrokerClientConfig, path: string): string | undefined {
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return undefined
  return client.apis?.find(entry => (entry.endsWith('*') ? path.startsWith(entry.slice(0, -1)) : path === entry))
}

/** Every body as bytes, whatever its type (JSON, a multipart upload): passed on untouched. */
export function acceptRawBodies (app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) => {
    done(null, body)
  })
}

export interface GatewayCall {
  appid: string
  client: BrokerClientConfig
  /** The matched `apis` entry. */
  api: string
  method: string
  path: string
  /** The caller's query, its access_token already removed. */
  query: URLSearchParams
  body: Buffer | undefined
  type: string | undefined
  log: FastifyBaseLogger
}

export interface GatewayAnswer {
  status: number
  headers: Record<string, string>
  /** Bytes when the answer was JSON or text (read for WeChat's errcode); a stream otherwise. */
  body: Buffer | Readable
}

interface GatewayOptions {
  got: Got
  wechatBaseUrl: string
  timeoutMs: number
  metrics: BrokerMetrics
  tokens: TokenManager
  limits: GatewayLimits
}

/** WeChat's errcode in a JSON answer, if it is one. */
function errcodeOf (body: Buffer): number | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as { errcode?: unknown }
    return typeof v.errcode === 'number' ? v.errcode : undefined
  } catch {
    return undefined
  }
}

/** Bytes of a stream, failing past `limit`. */
async function collect (stream: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const part of stream) {
    size += (part as Buffer).length
    if (size > limit) {
      stream.destroy()
      throw errors.upstreamUnavailable('the answer is larger than the gateway carries')
    }
    parts.push(part as Buffer)
  }
  return Buffer.concat(parts)
}

/** Passes bytes on, failing the stream (and so the caller's answer) past `limit`. */
function bounded (limit: number): Transform {
  let size = 0
  return new Transform({
    transform (chunk: Buffer, _encoding, done) {
      size += chunk.length
      done(size > limit ? new Error('the answer is larger than the gateway carries') : null, chunk)
    }
  })
}

/**
 * One call through the gateway: the client's bounds, the app's current access_token, WeChat's
 * answer streamed back unless it is JSON or text (read for its errcode), and a 40001, 42001 or
 * 40014 recovered once, centrally (compare-and-refresh, one refresh cluster-wide) before the call
 * is sent again: WeChat did not process a call it refused for its token. The request body is held
 * (within BODY_LIMIT) because that second sending needs it. Logs name the path and WeChat's
 * errcode only: bodies carry users' data, URLs the token.
 */
export class Gateway {
  constructor (private readonly opts: GatewayOptions) {}

  async call (c: GatewayCall): Promise<GatewayAnswer> {
    const count = (result: string): void => {
      this.opts.metrics.gatewayRequests.inc({ client: c.client.name, api: c.api, result })
    }
    const release = this.opts.limits.acquire(c.client)
    if (typeof release === 'string') {
      count(`limited_${release}`)
      throw errors.gatewayLimited(c.client, release)
    }
    try {
      let served = await this.opts.tokens.getToken(c.appid)
      let answer = await this.send(c, served.record.token)
      let errcode = answer.errcode
      if (errcode !== undefined && TOKEN_REJECTED.has(errcode)) {
        served = await this.opts.tokens.invalidate(c.appid, served.record.token, c.client.name)
        answer = await this.send(c, served.record.token)
        errcode = answer.errcode
      }
      const result =
        answer.status >= 400 ? `http_${answer.status}` : errcode === undefined || errcode === 0 ? 'ok' : String(errcode)
      count(result)
      c.log.info(
        { appid: c.appid, client: c.client.name, path: c.path, status: answer.status, wechat_errcode: errcode },
        'gateway call'
      )
      return answer
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== undefined) {
        count('error')
        throw err
      }
      const kind = (err as { name?: string }).name === 'TimeoutError' ? 'timeout' : 'network_error'
      count(kind)
      // got's error carries the URL, and the token in it: only the kind leaves.
      throw errors.upstreamUnavailable(kind === 'timeout' ? 'timed out' : 'network error')
    } finally {
      release()
    }
  }

  /** One sending, traced as a client span named by the path, with WeChat's errcode. */
  private async send (c: GatewayCall, token: string): Promise<GatewayAnswer & { errcode?: number }> {
    return await inSpan(
      'wechat gateway',
      { 'wechat.api': c.path, 'wechat.client': c.client.name },
      async span => {
        const answer = await this.sendOnce(c, token)
        span.setAttribute('http.response.status_code', answer.status)
        if (answer.errcode !== undefined) span.setAttribute('wechat.errcode', answer.errcode)
        return answer
      },
      SpanKind.CLIENT
    )
  }

  private async sendOnce (c: GatewayCall, token: string): Promise<GatewayAnswer & { errcode?: number }> {
    const search = new URLSearchParams(c.query)
    search.set('access_token', token)
    const stream = this.opts.got.stream(`${this.opts.wechatBaseUrl}${c.path}`, {
      method: c.method as 'GET',
      searchParams: search,
      ...(c.body === undefined || c.body.length === 0 || c.method === 'GET'
        ? {}
        : { body: c.body, headers: { 'content-type': c.type ?? 'application/octet-stream' } }),
      throwHttpErrors: false,
      followRedirect: false,
      timeout: { request: this.opts.timeoutMs }
    })
    const res = await new Promise<{ statusCode: number, headers: Record<string, string | string[] | undefined> }>(
      (resolve, reject) => {
        stream.once('response', resolve)
        stream.once('error', reject)
      }
    )
    const headers: Record<string, string> = {}
    for (const h of ANSWER_HEADERS) {
      const v = res.headers[h]
      if (typeof v === 'string') headers[h] = v
    }
    const type = headers['content-type'] ?? ''
    if (Number(res.headers['content-length'] ?? 0) > ANSWER_LIMIT) {
      stream.destroy()
      throw errors.upstreamUnavailable('the answer is larger than the gateway carries')
    }
    if (type === '' || type.includes('json') || type.startsWith('text/')) {
      // WeChat's errors come as JSON (some APIs label it text/plain): read whole, for the errcode.
      const body = await collect(stream, ANSWER_LIMIT)
      return { status: res.statusCode, headers, body, errcode: errcodeOf(body) }
    }
    // An error mid-answer (a timeout, the bound) ends the caller's answer too: pipeline passes it on.
    const body = bounded(ANSWER_LIMIT)
    pipeline(stream, body, () => {})
    return { status: res.statusCode, headers, body }
  }
}
