import type { FastifyInstance } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import { toServiceError } from '@wxlogin/service-kit'
import { thirdLogin } from '../login/login.js'
import ipLimit from '../plugins/ip-limit.js'
import phoneLimit from '../plugins/phone-limit.js'
import sessionAuth from '../plugins/session-auth.js'
import sessionRoutes from './sessions.js'
import { refreshRoutes } from './tokens.js'
import { errorResponses, loginResponse, thirdLoginBody } from '../schemas.js'

export default async function apiRoutes (scope: FastifyInstance): Promise<void> {
  // Inside /api only: the health routes have no IP limit.
  await scope.register(ipLimit)
  await scope.register(phoneLimit)
  await scope.register(sessionAuth)
  const app = scope.withTypeProvider<JsonSchemaToTsProvider>()
  const { loginMetrics: metrics } = app

  app.post(
    '/user/thirdLogin',
    {
      // Counted by the route itself, beside the code's claim: one round trip for both.
      config: { rateLimit: false },
      attachValidation: true,
      onRequest: async (request, reply) => {
        request.ipLimit = app.startIpLimit(request, reply)
        request.ipLimit.catch(() => {})
      },
      schema: {
        summary: "Log in with wx.login()'s code and, optionally, the phone button's phoneCode",
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: thirdLoginBody,
        response: { 200: loginResponse, ...errorResponses }
      },
      onError: async (_request, _reply, error) => {
        metrics.logins.inc({ result: toServiceError(error).code })
      }
    },
    async (request, reply) => {
      let answer
      try {
        if (request.validationError !== undefined) throw request.validationError
        answer = await thirdLogin(app, request, reply, request.body)
      } catch (err) {
        // An address over its limit is told so first, whatever else was wrong.
        await request.ipLimit
        throw err
      }
      await request.ipLimit
      metrics.logins.inc({ result: 'ok' })
      reply.header('cache-control', 'no-store')
      return answer
    }
  )

  // The session routes, on the same scope (limits, auth).
  await app.register(sessionRoutes)
  const signed = app.signedSessions
  if (signed !== null) {
    await app.register(async s => {
      await refreshRoutes(s, signed)
    })
  }
}
