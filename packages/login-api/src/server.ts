import { startTracingOrExit } from '@wxlogin/service-kit/tracing'

// Tracing first (nothing is loaded without OTEL_ variables): the http instrumentation wraps
// node's http as fastify and got first load it, so everything else is imported after.
const tracing = await startTracingOrExit('login-api', process.env)
const { default: closeWithGrace } = await import('close-with-grace')
const { configOrExit, startOrExit, startService } = await import('@wxlogin/service-kit')
const { buildApp } = await import('./app.js')
const { loadConfig, worstCaseLoginMs } = await import('./config.js')

const config = configOrExit('login-api', loadConfig, process.env)
const app = await startOrExit('login-api', buildApp(config, { tracing }))
const service = await startService(app, config, {
  apps: config.apps,
  store: config.redis === undefined ? 'memory' : 'redis',
  users: config.database?.dialect ?? (config.redis === undefined ? 'memory' : 'redis')
})
// Long enough for the slowest login in flight to finish: its phone exchange is already billed.
// The spans of the last logins are exported last.
closeWithGrace({ delay: worstCaseLoginMs(config) + 5000 }, async reason => {
  await service.close(reason)
  await tracing?.shutdown()
})
