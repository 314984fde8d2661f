import type { FastifyInstance } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import { errors } from '../errors.js'
import { publicUser } from '../login/login.js'
import { sessionOf, type AuthenticatedSession } from '../plugins/session-auth.js'
import { deleteAccountBody, errorResponses, logoutQuery, phoneBody, sessionAnswer, userSchema } from '../schemas.js'
import { storeCall } from '../store-call.js'
import { deleteAccount, uniqueIdentities } from '../users/account-deletion.js'
import { NOTHING_BESIDE, type Identity } from '../users/user-store.js'

/** This session: an opaque one deleted, a signed one's refresh family revoked. */
async function endSession (app: FastifyInstance, session: AuthenticatedSession): Promise<void> {
  if (session.family !== undefined) await storeCall(app.signedSessions?.revoke(session.family) ?? Promise.resolve())
  else await storeCall(app.sessions.delete(session.tokenHash))
}

/** Every session of the user, opaque and signed; how many ended. */
async function endAllSessions (app: FastifyInstance, session: AuthenticatedSession): Promise<number> {
  const opaque = await storeCall(app.sessions.deleteAllOf(session.user_id))
  const signed = await storeCall(app.signedSessions?.revokeAllOf(session.user_id) ?? Promise.resolve(0))
  if (session.family === undefined) await storeCall(app.sessions.delete(session.tokenHash))
  return opaque + signed
}

/** The apps the session's user logged in from, this session's own first. */
async function identitiesOf (app: FastifyInstance, session: AuthenticatedSession): Promise<Identity[]> {
  // Read without opening the record's sealed data: deletion works under any key file.
  const known = await storeCall(app.users.identitiesOf(session.user_id))
  return uniqueIdentities([{ appid: session.appid, openid: session.openid }, ...known])
}

/** What a session token opens: the user, the gateway check, a phone change, logout. */
export default async function sessionRoutes (scope: FastifyInstance): Promise<void> {
  const app = scope.withTypeProvider<JsonSchemaToTsProvider>()
  const { loginMetrics: metrics } = app
  const security = [{ session: [] }]

  app.get(
    '/user/me',
    {
      schema: { summary: 'The logged-in user', security, response: { 200: userSchema, ...errorResponses } },
      preValidation: app.requireSession
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const { user_id: userId, appid, openid } = sessionOf(request)
      const user = await storeCall(app.users.getUser(userId))
      if (user === null) throw errors.unauthorized()
      return publicUser(user, { appid, openid })
    }
  )

  app.get(
    '/user/session',
    {
      schema: {
        summary:
          'For API gateways (nginx auth_request, Envoy ext_authz): 200 with X-User-Id, X-User-Openid, X-User-Appid ' +
            'for a live session, else 401',
        description:
          "One Redis read; not rate-limited per IP (a gateway sends every user's requests from its own address).",
        security,
        response: { 200: sessionAnswer, ...errorResponses }
      },
      config: { rateLimit: false },
      preValidation: app.requireSession
    },
    async (request, reply) => {
      const { user_id: userId, appid, openid } = sessionOf(request)
      reply.header('cache-control', 'no-store')
      reply.header('x-user-id', userId)
      reply.header('x-user-openid', openid)
      reply.header('x-user-appid', appid)
      return { user_id: userId, appid, openid }
    }
  )

  app.post(
    '/user/phone',
    {
      schema: {
        summary: "Set the user's phone number from a phoneCode",
        security,
        body: phoneBody,
        response: { 200: userSchema, ...errorResponses }
      },
      preValidation: app.requireSession
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const { appid, openid } = sessionOf(request)
      const { phone, settled } = await app.exchangePhone(request, reply, appid, openid, request.body.phoneCode)
      const done = await storeCall(
        app.users.beginLogin({ appid, openid }, null).commit({
          patch: { phone },
          events: d => (d.phoneChanged ? [{ type: 'user.phone_changed', user: d.user, appid, openid }] : []),
          beside: NOTHING_BESIDE
        })
      )
      await settled
      for (const e of done.events) metrics.events.inc({ type: e.type })
      return publicUser(done.user, { appid, openid })
    }
  )

  app.delete(
    '/user/me',
    {
      schema: {
        summary:
          'Delete the account (注销): the user, its identities, sessions, kept code answers and limits; a user.deleted ' +
            'event',
        security,
        body: deleteAccountBody,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses }
      },
      preValidation: app.requireSession
    },
    async (request, reply) => {
      const session = sessionOf(request)
      const { user_id: userId, appid, openid } = session
      const identities = await identitiesOf(app, session)
      await deleteAccount(app, userId, { appid, openid }, identities)
      // Sessions last: a deletion that failed half way can be retried with the same session.
      await endAllSessions(app, session)
      request.log.info({ user_id: userId }, 'account deleted')
      return await reply.code(204).send(null)
    }
  )

  app.post(
    '/user/logout',
    {
      schema: {
        summary: 'End the session (?all=true: every session of the user): the tokens stop working',
        security,
        querystring: logoutQuery,
        response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses }
      },
      preValidation: app.requireSession
    },
    async (request, reply) => {
      const session = sessionOf(request)
      if (request.query.all === 'true') {
        // A kept login answer would open a new session to whoever retries it: those end too, for
        // every app the user logged in from.
        const identities = await identitiesOf(app, session)
        await storeCall(app.exchanges.revokeAllOf(identities))
        const ended = await endAllSessions(app, session)
        request.log.info({ sessions: ended }, 'logged out everywhere')
      } else {
        await endSession(app, session)
      }
      return await reply.code(204).send(null)
    }
  )
}
