import closeWithGrace from 'close-with-grace'
import { configOrExit, startOrExit, startService } from '@wxlogin/service-kit'
import { buildApp } from './app.js'
import { loadConfig, worstCaseLoginMs } from './config.js'

const config = configOrExit('login-api', loadConfig, process.env)
const app = await startOrExit('login-api', buildApp(config))
const service = await startService(app, config, {
  apps: config.apps,
  store: config.redis === undefined ? 'memory' : 'redis',
  users: config.database?.dialect ?? (config.redis === undefined ? 'memory' : 'redis')
})
// Long enough for the slowest login in flight to finish: its phone exchange is already billed.
closeWithGrace({ delay: worstCaseLoginMs(config) + 5000 }, service.close)
