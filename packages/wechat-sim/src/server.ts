import closeWithGrace from 'close-with-grace'
import { ConfigError, configOrExit, EnvReader, errorFields, loggerOptions } from '@wxlogin/service-kit'
import { createSimulator, type SimulatorOptions } from './app.js'

/** An app of SIM_APPS, with what its console holds for message push (all optional). */
interface SimApp {
  appid: string
  secret: string
  push_url?: string
  push_token?: string
  push_aes_key?: string
  push_mode?: 'plain' | 'compatible' | 'safe'
}

function readConfig (env: Record<string, string | undefined>): { host: string, port: number, sim: SimulatorOptions } {
  const r = new EnvReader(env)
  const apps = r.json<SimApp[]>('SIM_APPS') ?? [
    {
      appid: r.string('WECHAT_APPID', 'wxdevapp0000000001'),
      secret: r.secret('WECHAT_SECRET') ?? 'dev-secret-not-for-production'
    }
  ]
  if (!Array.isArray(apps) || apps.some(a => typeof a?.appid !== 'string' || typeof a?.secret !== 'string')) {
    throw new ConfigError('SIM_APPS', 'must be a JSON array of {"appid", "secret"}')
  }
  return {
    host: r.string('HOST', '127.0.0.1'),
    port: r.port('PORT', 3999),
    sim: {
      apps,
      tokenExpiresIn: r.int('SIM_TOKEN_EXPIRES_IN', 7200, { min: 1 }),
      classicOverlapSeconds: r.int('SIM_CLASSIC_OVERLAP_SECONDS', 300),
      stableRenewBeforeSeconds: r.int('SIM_STABLE_RENEW_BEFORE_SECONDS', 300),
      codeTtlSeconds: r.int('SIM_CODE_TTL_SECONDS', 300, { min: 1 }),
      phoneLimitPerMinute: r.int('SIM_PHONE_LIMIT_PER_MINUTE', 0),
      latencyMs: r.int('SIM_LATENCY_MS', 0),
      pushTargets: Object.fromEntries(
        apps
          .filter(a => typeof a.push_url === 'string' && typeof a.push_token === 'string')
          .map(a => [
            a.appid,
            {
              url: a.push_url as string,
              token: a.push_token as string,
              ...(a.push_aes_key === undefined ? {} : { aesKey: a.push_aes_key }),
              mode: a.push_mode ?? 'safe',
              format: 'xml' as const
            }
          ])
      ),
      logger: loggerOptions(r.level('LOG_LEVEL'), 'wechat-sim')
    }
  }
}

const config = configOrExit('wechat-sim', readConfig, process.env)

const { app } = createSimulator(config.sim)
closeWithGrace({ delay: 10_000 }, async ({ err }) => {
  if (err !== undefined) app.log.error({ err: errorFields(err) }, 'closing after an uncaught error')
  await app.close()
})
await app.listen({ host: config.host, port: config.port })
