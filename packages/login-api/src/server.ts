import closeWithGrace from 'close-with-grace'
import { buildMetricsServer, configOrExit } from '@wxlogin/service-kit'
import { buildApp } from './app.js'
import { loadConfig, worstCaseLoginMs } from './config.js'

const config = configOrExit('login-api', loadConfig, process.env)
const app = await buildApp(config)
// Metrics on their own listener, so they are never reachable on the public port.
const metricsServer = buildMetricsServer(app.registry)

// Long enough for the slowest login in flight to finish: its phone exchange is already billed.
closeWithGrace({ delay: worstCaseLoginMs(config) + 5000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ errName: err.name }, 'closing after an uncaught error')
  else app.log.info({ signal }, 'closing')
  await app.close()
  await metricsServer.close()
})

await app.listen({ host: config.host, port: config.port })
await metricsServer.listen({ host: config.host, port: config.metricsPort })
app.log.info({ appid: config.appid, metricsPort: config.metricsPort, store: config.redis === undefined ? 'memory' : 'redis' }, 'login-api ready')
