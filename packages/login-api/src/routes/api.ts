import type { FastifyInstance } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import { toServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import { publicUser, thirdLogin } from '../login.js'
import ipLimit from '../plugins/ip-limit.js'
import phoneLimit from '../plugins/phone-limit.js'
import sessionAuth, { sessionOf } from '../plugins/session-auth.js'
import { errorResponses, loginResponse, phoneBody, thirdLoginBody, userSchema } from '../schemas.js'
import { storeCall } from '../store-call.js'

export default async function apiRoutes (scope: FastifyInstance): Promise<void> {
  // Inside /api only: the health routes have no IP limit.
  await scope.register(ipLimit)
  await scope.register(phoneLimit)
  await scope.register(sessionAuth)
  const app = scope.withTypeProvider<JsonSchemaToTsProvider>()
  const { loginMetrics: metrics } = app
  const security = [{ session: [] }]

  app.post('/user/thirdLogin', {
    schema: {
      summary: 'Log in with wx.login()\'s code and, optionally, the phone button\'s phoneCode',
      consumes: ['application/json', 'application/x-www-form-urlencoded'],
      body: thirdLoginBody,
      response: { 200: loginResponse, ...errorResponses }
    },
    onError: async (_request, _reply, error) => { metrics.logins.inc({ result: toServiceError(error).code }) }
  }, async (request, reply) => {
    const answer = await thirdLogin(app, request, reply, request.body)
    metrics.logins.inc({ result: 'ok' })
    reply.header('cache-control', 'no-store')
    return answer
  })

  app.get('/user/me', {
    schema: { summary: 'The logged-in user', security, response: { 200: userSchema, ...errorResponses } },
    preValidation: app.requireSession
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const { appid, openid } = sessionOf(request)
    const user = await storeCall(app.users.getUser(appid, openid))
    if (user === null) throw errors.unauthorized()
    return publicUser(user)
  })

  app.post('/user/phone', {
    schema: { summary: 'Set the user\'s phone number from a phoneCode', security, body: phoneBody, response: { 200: userSchema, ...errorResponses } },
    preValidation: app.requireSession
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const { appid, openid } = sessionOf(request)
    const phone = await app.exchangePhone(request, reply, openid, request.body.phoneCode)
    const { user } = await storeCall(app.users.upsertUser(appid, openid, { phone }))
    return publicUser(user)
  })

  app.post('/user/logout', {
    schema: { summary: 'End the session: the token stops working', security, response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses } },
    preValidation: app.requireSession
  }, async (request, reply) => {
    await storeCall(app.sessions.delete(sessionOf(request).tokenHash))
    return await reply.code(204).send(null)
  })
}
