import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { APPID, toServiceError } from '@wxlogin/service-kit'
import type { ServedToken } from '../credentials/token-manager.js'
import type { SurrogateTokens } from '../gateway/surrogates.js'

/** WeChat's own error shape, answered with HTTP 200 as WeChat does; SDKs read nothing else. */
interface WechatError {
  errcode: number
  errmsg: string
}

const wx = (errcode: number, errmsg: string): WechatError => ({ errcode, errmsg })

/** A failure of the broker's own upstream credentials is not the caller's fault: -1, retry later. */
const BROKER_SIDE = new Set([40001, 40002, 40013, 40125, 40164, 41002, 41004])

function asWechatError (err: unknown): WechatError {
  const se = toServiceError(err)
  switch (se.code) {
    case 'invalid_body':
    case 'unsupported_media_type':
    case 'payload_too_large':
    case 'bad_request':
      return wx(47001, 'data format error')
    case 'refresh_throttled':
      return wx(45011, `api minute-quota reach limit: ${se.message}`)
    case 'refresh_budget_exhausted':
      return wx(45009, `reach max api daily quota limit: ${se.message}`)
  }
  const errcode = se.wechatErrcode
  if (errcode !== undefined && errcode !== -1 && !BROKER_SIDE.has(errcode)) return wx(errcode, se.message)
  return wx(-1, `system error: ${se.message}`)
}

const credentialFields = {
  grant_type: { type: 'string', maxLength: 64 },
  appid: { type: 'string', maxLength: 64 },
  secret: {
    type: 'string',
    maxLength: 512,
    description: 'A client token from BROKER_CLIENTS, in place of the appsecret'
  }
} as const

const tokenAnswer = {
  200: {
    type: 'object',
    description: "WeChat's shape: the token, or errcode/errmsg (always HTTP 200, as WeChat answers)",
    properties: {
      access_token: { type: 'string' },
      expires_in: { type: 'integer' },
      errcode: { type: 'integer' },
      errmsg: { type: 'string' }
    }
  }
} as const

interface Credentials {
  grant_type?: string
  appid?: string
  secret?: string
}

/**
 * `/cgi-bin/token` and `/cgi-bin/stable_token` as WeChat serves them, with a client token where
 * the appsecret would go: an SDK pointed here needs no code change, and the real secret never
 * leaves the broker. Neither route ever makes WeChat issue a token the broker's callers do not
 * share: `/cgi-bin/token` is answered from the broker's cache, and a force_refresh is a
 * compare-and-refresh.
 */
export default async function wechatCompatRoutes (
  app: FastifyInstance,
  { forceRefreshGraceMs, surrogates }: { forceRefreshGraceMs: number, surrogates: SurrogateTokens }
): Promise<void> {
  app.setErrorHandler(async (err, request, reply) => {
    const answer = asWechatError(err)
    if (answer.errcode === -1) {
      request.log.warn({ error: toServiceError(err).code }, 'WeChat-shaped token request failed')
    }
    return await reply.code(200).send(answer)
  })

  /** The app a valid client may use, or WeChat's error for the request. */
  function authorize (request: FastifyRequest, c: Credentials): string | WechatError {
    const refused = (errcode: number, errmsg: string): WechatError => {
      // Answered with HTTP 200, as WeChat does: without this a wrong token would be invisible.
      app.authFailures.record(request.routeOptions.url ?? 'unknown', errcode, {
        ip: request.ip,
        client: request.brokerClient?.name
      })
      return wx(errcode, errmsg)
    }
    if (c.grant_type !== 'client_credential') return refused(40002, 'invalid grant_type')
    if (c.appid === undefined || c.appid === '') return refused(41002, 'appid missing')
    if (c.secret === undefined || c.secret === '') return refused(41004, 'appsecret missing')
    const client = app.brokerClientFor(c.secret)
    if (client === null) return refused(40125, 'invalid appsecret: not a client token of this broker')
    request.brokerClient = client
    if (!client.apps.includes('*') && !client.apps.includes(c.appid)) {
      return refused(40125, `invalid appsecret: client ${client.name} may not use this app`)
    }
    if (!APPID.test(c.appid) || !app.tokens.hasApp(c.appid)) {
      return refused(40013, 'invalid appid: the broker holds no such app')
    }
    return c.appid
  }

  const answer = (reply: FastifyReply, appid: string, served: ServedToken): object => {
    reply.header('cache-control', 'no-store')
    const client = reply.request.brokerClient
    return {
      // "token_form": "surrogate": a token that works only at this broker, for the real one's life.
      access_token:
        client?.tokenForm === 'surrogate'
          ? surrogates.issue(client, appid, served.record.expiresAt)
          : served.record.token,
      expires_in: Math.max(0, Math.floor((served.record.expiresAt - Date.now()) / 1000))
    }
  }

  app.get<{ Querystring: Credentials }>(
    '/token',
    {
      schema: {
        summary: "WeChat's GET /cgi-bin/token, answered from the broker's cache (never a new token)",
        querystring: { type: 'object', properties: credentialFields },
        response: tokenAnswer
      }
    },
    async (request, reply) => {
      const appid = authorize(request, request.query)
      if (typeof appid !== 'string') return appid
      return answer(reply, appid, await app.recheckServed(request, appid, await app.tokens.getToken(appid)))
    }
  )

  app.post<{ Body: Credentials & { force_refresh?: boolean } }>(
    '/stable_token',
    {
      schema: {
        summary: "WeChat's POST /cgi-bin/stable_token; force_refresh is a compare-and-refresh",
        description:
          'force_refresh: true refreshes only when the current token is older than ' +
            'TOKEN_FORCE_REFRESH_GRACE_SECONDS; a younger one is the answer.',
        body: { type: 'object', properties: { ...credentialFields, force_refresh: { type: 'boolean' } } },
        response: tokenAnswer
      }
    },
    async (request, reply) => {
      const appid = authorize(request, request.body)
      if (typeof appid !== 'string') return appid
      if (request.body.force_refresh !== true) {
        return answer(reply, appid, await app.recheckServed(request, appid, await app.tokens.getToken(appid)))
      }
      const served = await app.tokens.forceRefresh(
        appid,
        forceRefreshGraceMs,
        request.brokerClient?.name,
        app.verifyToken
      )
      request.log.info(
        { appid, client: request.brokerClient?.name, source: served.source },
        'WeChat-shaped force_refresh'
      )
      return answer(reply, appid, served)
    }
  )
}
