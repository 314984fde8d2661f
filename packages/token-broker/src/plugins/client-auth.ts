import fp from 'fastify-plugin'
import { APPID, createSecretMatcher, ServiceError } from '@wxlogin/service-kit'
import type { BrokerClientConfig } from '../config.js'
import { errors } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    brokerClient: BrokerClientConfig | null
  }
  interface FastifyInstance {
    /** onRequest hook for /v1 routes with an :appid param: 401, then 403, then 404, all before the body is read. */
    authorizeApp: (request: import('fastify').FastifyRequest<{ Params: { appid: string } }>) => Promise<void>
    /** The client a token belongs to (compared in constant time), or null. */
    brokerClientFor: (token: string) => BrokerClientConfig | null
  }
}

export default fp<{ clients: BrokerClientConfig[] }>(async (app, { clients }) => {
  app.decorateRequest('brokerClient', null)

  const match = createSecretMatcher(clients.map(c => ({ secret: c.token, value: c })))

  function authenticate (header: string | undefined): BrokerClientConfig | null {
    if (header === undefined) return null
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    return m === null ? null : match(m[1] as string)
  }

  app.decorate('brokerClientFor', match)

  app.decorate('authorizeApp', async (request: import('fastify').FastifyRequest<{ Params: { appid: string } }>) => {
    const client = authenticate(request.headers.authorization)
    if (client === null) throw errors.unauthorized()
    request.brokerClient = client
    const { appid } = request.params
    // Authentication runs before schema validation (an unknown caller learns nothing about
    // our schemas), so the appid's shape is checked here.
    if (!APPID.test(appid)) throw new ServiceError('invalid_body', 'Invalid request: params/appid is not an appid.', 400)
    if (!client.apps.includes('*') && !client.apps.includes(appid)) throw errors.forbidden(appid)
    if (!app.tokens.hasApp(appid)) throw errors.unknownApp(appid)
  })
}, { name: 'client-auth', dependencies: ['tokens'] })
