// Scenario 1's baseline: a bare Fastify route with the broker's process settings (same
// logger, body limit, ajv options, schemas and bearer check) that returns a constant token
// of the broker's size. What it lacks is exactly the broker's own work.
import Fastify, { LogController } from 'fastify'
import { createSecretMatcher, loggerOptions } from '../packages/service-kit/dist/index.js'

const clients = JSON.parse(process.env.BROKER_CLIENTS)
const match = createSecretMatcher(clients.map(c => ({ secret: c.token, value: c })))
const body = { access_token: 'x'.repeat(Number(process.env.TOKEN_LENGTH ?? 128)), expires_in: 7000, expires_at: new Date(Date.now() + 7_000_000).toISOString() }
const app = Fastify({
  logger: loggerOptions(process.env.LOG_LEVEL ?? 'warn', 'baseline'),
  bodyLimit: 16 * 1024,
  requestTimeout: 30_000,
  return503OnClosing: true,
  // As the services: no per-request log lines (their access log is quiet on a fast 200).
  logController: new LogController({ disableRequestLogging: true }),
  ajv: { customOptions: { coerceTypes: false, removeAdditional: false } }
})
const tokenBody = {
  type: 'object',
  properties: { access_token: { type: 'string' }, expires_in: { type: 'integer' }, expires_at: { type: 'string', format: 'date-time' } }
}
app.get('/v1/apps/:appid/access-token', {
  schema: { params: { type: 'object', properties: { appid: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } }, response: { 200: tokenBody } },
  preHandler: async (request, reply) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
    const found = m === null ? null : match(m[1])
    if (found === null || !(found.apps.includes('*') || found.apps.includes(request.params.appid))) return reply.code(401).send({ error: 'unauthorized' })
  }
}, async (_request, reply) => {
  reply.header('cache-control', 'no-store')
  return body
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
