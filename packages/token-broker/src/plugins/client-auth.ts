import fp from 'fastify-plugin'
import { APPID, createHashMatcher, ServiceError, sha256Hex } from '@wxlogin/service-kit'
import type { BrokerClientConfig } from '../config.js'
import { AuthFailures } from '../clients/auth-failures.js'
import { errors } from '../errors.js'
import type { BrokerMetrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    brokerClient: BrokerClientConfig | null
  }
  interface FastifyInstance {
    /** onRequest hook for /v1 routes with an :appid param: 401, then 403, then 404, all before the body is read. */
    authorizeApp: (request: import('fastify').FastifyRequest<{ Params: { appid: string } }>) => Promise<void>
    /** The client a token belongs to (compared in constant time), or null. */
    brokerClientFor: (token: string) => BrokerClientConfig | null
    /** Counts and logs (rate-limited) a refused client, by route and errcode. */
    authFailures: AuthFailures
  }
}

export default fp<{ clients: BrokerClientConfig[], metrics: BrokerMetrics }>(
  async (app, { clients, metrics }) => {
    app.decorateRequest('brokerClient', null)
    const failures = new AuthFailures(metrics.authFailures, app.log)
    app.decorate('authFailures', failures)

    const match = createHashMatcher(
      clients.flatMap(c =>
        [...(c.token !== undefined ? [sha256Hex(c.token)] : []), ...(c.tokenHashes ?? [])].map(sha256 => ({
          sha256,
          value: c
        }))
      )
    )

    // Tokens that authenticated a client, kept as they were presented: the hot path answers a
    // known caller with a lookup instead of a SHA-256 a request. Only matches are kept (a caller
    // guessing tokens still pays the hash and the constant-time comparison), and only a few:
    // each client has one or two tokens.
    const known = new Map<string, BrokerClientConfig>()
    function matchKnown (presented: string): BrokerClientConfig | null {
      const hit = known.get(presented)
      if (hit !== undefined) return hit
      const client = match(presented)
      if (client !== null && known.size < 256) known.set(presented, client)
      return client
    }

    function authenticate (header: string | undefined): BrokerClientConfig | null {
      if (header === undefined) return null
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
      return m === null ? null : matchKnown(m[1] as string)
    }

    app.decorate('brokerClientFor', matchKnown)

    app.decorate('authorizeApp', async (request: import('fastify').FastifyRequest<{ Params: { appid: string } }>) => {
      const client = authenticate(request.headers.authorization)
      const route = request.routeOptions.url ?? 'unknown'
      if (client === null) {
        failures.record(route, 'unauthorized', { ip: request.ip })
        throw errors.unauthorized()
      }
      request.brokerClient = client
      const { appid } = request.params
      // Authentication runs before schema validation (an unknown caller learns nothing about
      // our schemas), so the appid's shape is checked here.
      if (!APPID.test(appid)) {
        throw new ServiceError('invalid_body', 'Invalid request: params/appid is not an appid.', 400)
      }
      if (!client.apps.includes('*') && !client.apps.includes(appid)) {
        failures.record(route, 'forbidden', { ip: request.ip, client: client.name })
        throw errors.forbidden(appid)
      }
      if (!app.tokens.hasApp(appid)) throw errors.unknownApp(appid)
    })
  },
  { name: 'client-auth', dependencies: ['tokens'] }
)
