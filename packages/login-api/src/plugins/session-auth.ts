import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { errors } from '../errors.js'
import type { SessionRecord } from '../session-store.js'
import { bearer, hashSessionToken } from '../sessions.js'
import { storeCall } from '../store-call.js'

/** A session that authenticated this request; `tokenHash` is how the store knows it. */
export interface AuthenticatedSession extends SessionRecord { user_id: string, tokenHash: string }

declare module 'fastify' {
  interface FastifyRequest {
    session: AuthenticatedSession | null
  }
  interface FastifyInstance {
    /** preValidation hook: 401 unless the bearer token is a live session of this app. */
    requireSession: (request: FastifyRequest) => Promise<void>
  }
}

/** The session requireSession established; a route without the hook has none. */
export function sessionOf (request: FastifyRequest): AuthenticatedSession {
  if (request.session === null) throw errors.unauthorized()
  return request.session
}

export default fp(async (app) => {
  /**
   * A session issued before user_ids names only the identity: its user_id is looked up, or
   * given now (the user record written then is adopted), so nobody is logged out by the upgrade.
   */
  async function legacyUserId (session: SessionRecord): Promise<string> {
    const identity = { appid: session.appid, openid: session.openid }
    return await storeCall(app.users.userIdOf(identity)) ?? (await storeCall(app.users.upsertUser(identity, null, {}))).user.user_id
  }

  app.decorateRequest('session', null)
  app.decorate('requireSession', async (request: FastifyRequest) => {
    const token = bearer(request.headers.authorization)
    if (token === null) throw errors.unauthorized()
    const tokenHash = hashSessionToken(token)
    const session = await storeCall(app.sessions.get(tokenHash))
    if (session === null || !app.loginConfig.apps.includes(session.appid)) throw errors.unauthorized()
    request.session = { ...session, user_id: session.user_id ?? await legacyUserId(session), tokenHash }
  })
}, { name: 'session-auth', dependencies: ['stores'] })
