import closeWithGrace from 'close-with-grace'
import { buildMetricsServer, configOrExit } from '@wxlogin/service-kit'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const config = configOrExit('token-broker', loadConfig, process.env)
const app = await buildApp(config)
const metricsServer = buildMetricsServer(app.registry)

closeWithGrace({ delay: 15_000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ errName: err.name }, 'closing after an uncaught error')
  else app.log.info({ signal }, 'closing')
  await app.close()
  await metricsServer.close()
})

await app.listen({ host: config.host, port: config.port })
await metricsServer.listen({ host: config.host, port: config.metricsPort })
app.log.info({ apps: config.apps.map(a => `${a.appid} (${a.tokenMode})`), metricsPort: config.metricsPort, store: config.redis === undefined ? 'memory' : 'redis' }, 'token-broker ready')
