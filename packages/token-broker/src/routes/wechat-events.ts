import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { Delivered } from '../push/event-store.js'
import { errorBody } from './common.js'

const POLL_MS = 250

const message = {
  type: 'object',
  required: ['id', 'appid', 'event', 'openid', 'create_time', 'message'],
  properties: {
    id: { type: 'string' },
    appid: { type: 'string' },
    event: { type: 'string', description: "WeChat's Event, else its MsgType" },
    openid: { type: 'string' },
    create_time: { type: 'integer', description: "WeChat's CreateTime (Unix seconds)" },
    message: { type: 'object', additionalProperties: true, description: 'The decrypted push, as JSON' }
  }
} as const

/**
 * WeChat's pushes for internal services, at least once: each client (its `events` in
 * BROKER_CLIENTS) has its own cursor; a message received and not acknowledged within
 * WECHAT_EVENTS_VISIBILITY_SECONDS is delivered again. Messages of apps or events the client does
 * not take are passed over for it (acknowledged on its behalf).
 */
export default async function wechatEventRoutes (app: FastifyInstance): Promise<void> {
  async function authorize (request: FastifyRequest): Promise<void> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
    const client = m === null ? null : app.brokerClientFor(m[1] as string)
    const route = request.routeOptions.url ?? 'unknown'
    if (client === null) {
      app.authFailures.record(route, 'unauthorized', { ip: request.ip })
      throw errors.unauthorized()
    }
    request.brokerClient = client
    if (client.events === undefined || client.events.length === 0) {
      app.authFailures.record(route, 'forbidden', { ip: request.ip, client: client.name })
      throw errors.noEvents(client.name)
    }
  }

  const store = async <T>(op: Promise<T>): Promise<T> => {
    try {
      return await op
    } catch (err) {
      if (err instanceof ServiceError) throw err
      throw errors.storeUnavailable(err)
    }
  }

  app.post<{ Body: { max?: number, wait_seconds?: number } }>(
    '/wechat-events/receive',
    {
      schema: {
        summary: "WeChat's pushes for this client (at least once: acknowledge each with /ack)",
        security: [{ bearer: [] }],
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: {
            max: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
            wait_seconds: { type: 'integer', minimum: 0, maximum: 20, default: 0 }
          }
        },
        response: {
          200: { type: 'object', required: ['messages'], properties: { messages: { type: 'array', items: message } } },
          '4xx': errorBody,
          '5xx': errorBody
        }
      },
      onRequest: authorize
    },
    async request => {
      const client = request.brokerClient
      if (client === null) throw errors.unauthorized()
      const max = request.body?.max ?? 10
      const deadline = Date.now() + (request.body?.wait_seconds ?? 0) * 1000
      const takes = (d: Delivered): boolean =>
        (client.apps.includes('*') || client.apps.includes(d.appid)) &&
        (client.events?.includes('*') === true || client.events?.includes(d.event) === true)
      for (;;) {
        const got = await store(app.wechatEvents.receive(client.name, max))
        const skipped = got.filter(d => !takes(d)).map(d => d.id)
        if (skipped.length > 0) await store(app.wechatEvents.ack(client.name, skipped))
        const messages = got.filter(takes)
        // A long poll: nothing yet, and the caller will wait.
        if (messages.length > 0 || (skipped.length === 0 && Date.now() + POLL_MS > deadline)) return { messages }
        if (skipped.length === 0) await new Promise(resolve => setTimeout(resolve, POLL_MS))
      }
    }
  )

  app.post<{ Body: { ids: string[] } }>(
    '/wechat-events/ack',
    {
      schema: {
        summary: 'Acknowledge received pushes: they are not delivered to this client again',
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          required: ['ids'],
          additionalProperties: false,
          properties: {
            ids: {
              type: 'array',
              minItems: 1,
              maxItems: 100,
              items: { type: 'string', pattern: '^\\d{1,20}-\\d{1,20}$' }
            }
          }
        },
        response: { 204: { type: 'null', description: 'Acknowledged' }, '4xx': errorBody, '5xx': errorBody }
      },
      onRequest: authorize
    },
    async (request, reply) => {
      const client = request.brokerClient
      if (client === null) throw errors.unauthorized()
      await store(app.wechatEvents.ack(client.name, request.body.ids))
      return await reply.code(204).send(null)
    }
  )
}
