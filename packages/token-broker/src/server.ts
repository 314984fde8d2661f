import { startTracingOrExit } from '@wxlogin/service-kit/tracing'

// Tracing first (nothing is loaded without OTEL_ variables): the http instrumentation wraps
// node's http as fastify and got first load it, so everything else is imported after.
const tracing = await startTracingOrExit('token-broker', process.env)
const { default: closeWithGrace } = await import('close-with-grace')
const { configOrExit, startService } = await import('@wxlogin/service-kit')
const { buildApp, buildPushListener } = await import('./app.js')
const { loadConfig } = await import('./config.js')

const config = configOrExit('token-broker', loadConfig, process.env)
const app = await buildApp(config, { tracing })
const service = await startService(app, config, {
  apps: config.apps.map(a => `${a.appid} (${a.tokenMode})`),
  store: config.redis === undefined ? 'memory' : 'redis'
})
// WeChat's pushes on a listener of their own (PUSH_PORT): the one port that faces the internet.
const push = await buildPushListener(app, config)
if (push !== null) {
  await push.listen({ host: config.host, port: config.push?.port })
  app.log.info({ pushPort: config.push?.port, apps: [...(config.push?.apps.keys() ?? [])] }, 'push listener ready')
}
// A refresh in flight finishes (its token is stored for the other replicas) before the exit;
// the push listener first, so WeChat is not told success by a process that is going. The spans
// of the last requests are exported last.
closeWithGrace({ delay: 15_000 }, async reason => {
  await push?.close()
  await service.close(reason)
  await tracing?.shutdown()
})
