import type { FastifyInstance } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import { errors } from '../errors.js'
import { errorResponses, jwksAnswer, refreshAnswer, refreshBody } from '../schemas.js'
import type { SignedSessions } from '../sessions/jwt/signed-sessions.js'
import { storeCall } from '../store-call.js'

/** SESSION_FORMAT=jwt: a refresh token exchanged for a new pair, under /api (its IP limit applies). */
export async function refreshRoutes (scope: FastifyInstance, signed: SignedSessions): Promise<void> {
  const app = scope.withTypeProvider<JsonSchemaToTsProvider>()
  const { loginMetrics: metrics } = app
  app.post(
    '/user/token/refresh',
    {
      schema: {
        summary:
          'A refresh token for a new access token and refresh token; each refresh token works once, and a spent one ' +
            'presented again revokes its family',
        body: refreshBody,
        response: { 200: refreshAnswer, ...errorResponses }
      }
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const outcome = await storeCall(signed.refresh(request.body.refresh_token))
      metrics.refreshes.inc({ result: outcome.result })
      if (outcome.ok) return outcome.pair
      if (outcome.result === 'reuse') {
        // Someone else holds a copy of this family's tokens: both copies now end.
        request.log.warn(
          { user_id: outcome.family?.user_id, appid: outcome.family?.appid },
          'refresh token reused: its family is revoked'
        )
      }
      throw errors.invalidRefreshToken()
    }
  )
}

/** The public keys that verify access tokens, for services and gateways (cacheable). */
export async function jwksRoute (app: FastifyInstance, signed: SignedSessions): Promise<void> {
  const body = signed.jwts.jwks()
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        summary: 'The JWKS that verifies SESSION_FORMAT=jwt access tokens (public keys only)',
        response: { 200: jwksAnswer }
      },
      config: { rateLimit: false }
    },
    async (_request, reply) => {
      // Rotation is add, wait ACCESS_TOKEN_TTL_SECONDS, remove: a verifier's copy this old still verifies.
      reply.header('cache-control', 'public, max-age=300')
      return body
    }
  )
}
