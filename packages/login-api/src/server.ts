import closeWithGrace from 'close-with-grace'
import { buildMetricsServer, ConfigError } from '@wxlogin/service-kit'
import { buildApp } from './app.js'
import { loadConfig, type LoginConfig } from './config.js'

let config: LoginConfig
try {
  config = loadConfig(process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`login-api: ${err.message}\n`)
  process.exit(1)
}

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
app.log.info({ appid: config.appid, metricsPort: config.metricsPort, store: config.redisUrl === undefined ? 'memory' : 'redis' }, 'login-api ready')
