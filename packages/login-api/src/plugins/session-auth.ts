import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { errors } from '../errors.js'
import type { SessionRecord } from '../sessions/session-store.js'
import { bearer, bearerJwt, hashSessionToken } from '../sessions/session-tokens.js'
import { storeCall } from '../store-call.js'

/**
 * A session that authenticated this request: an opaque token (`tokenHash` is how the store knows
 * it) or a signed access token (`family`: the refresh family it was issued with; no tokenHash).
 */
export interface AuthenticatedSession extends SessionRecord {
  user_id: string
  tokenHash: string
  family?: string
}

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

export default fp(
  async app => {
    app.decorateRequest('session', null)
    /**
     * A signed access token: its signature, algorithm, kid, issuer, audience and expiry, then its
     * family (one Redis read), so logout and a detected theft end it here at once; a service that
     * verifies on its own accepts it until `exp` (docs/sessions-jwt.md).
     */
    async function signedSession (request: FastifyRequest, jwt: string): Promise<void> {
      const signed = app.signedSessions
      const claims = signed === null ? null : await signed.jwts.verify(jwt)
      if (signed === null || claims === null || !app.loginConfig.apps.includes(claims.appid)) {
        throw errors.unauthorized()
      }
      if (!(await storeCall(signed.isLive(claims.sid)))) throw errors.unauthorized()
      request.session = {
        user_id: claims.sub,
        appid: claims.appid,
        openid: claims.openid,
        tokenHash: '',
        family: claims.sid
      }
    }

    app.decorate('requireSession', async (request: FastifyRequest) => {
      // Opaque tokens stay valid in jwt mode: switching formats logs nobody out.
      const jwt = bearerJwt(request.headers.authorization)
      if (jwt !== null) return await signedSession(request, jwt)
      const token = bearer(request.headers.authorization)
      if (token === null) throw errors.unauthorized()
      const tokenHash = hashSessionToken(token)
      const session = await storeCall(app.sessions.get(tokenHash))
      if (session === null || !app.loginConfig.apps.includes(session.appid)) throw errors.unauthorized()
      request.session = { ...session, tokenHash }
    })
  },
  { name: 'session-auth', dependencies: ['stores'] }
)
