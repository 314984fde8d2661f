import closeWithGrace from 'close-with-grace'
import { configOrExit, startService } from '@wxlogin/service-kit'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const config = configOrExit('token-broker', loadConfig, process.env)
const app = await buildApp(config)
const service = await startService(app, config, {
  apps: config.apps.map(a => `${a.appid} (${a.tokenMode})`),
  store: config.redis === undefined ? 'memory' : 'redis'
})
// A refresh in flight finishes (its token is stored for the other replicas) before the exit.
closeWithGrace({ delay: 15_000 }, service.close)
