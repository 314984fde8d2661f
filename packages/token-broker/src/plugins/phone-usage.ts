import fp from 'fastify-plugin'
import { toServiceError } from '@wxlogin/service-kit'
import type { BrokerConfig } from '../config.js'
import type { BrokerMetrics } from '../metrics.js'

/**
 * The phone components' cost in view: every PHONE_USAGE_POLL_SECONDS each app's quota of each
 * spu in PHONE_USAGE_SPU_IDS is read from WeChat (/wxa/charge/usage/get) into the gauges
 * `wechat_charge_quota_used` and `wechat_charge_quota_total`, on which PhoneQuotaLow and
 * PhoneQuotaExhausted alert. Every replica polls (a few calls an hour): a dashboard takes the max.
 */
export default fp<{ config: BrokerConfig, metrics: BrokerMetrics }>(
  async (app, { config, metrics }) => {
    const usage = config.phoneUsage
    if (usage === undefined) return
    let timer: NodeJS.Timeout | undefined
    let running: Promise<void> | undefined

    async function pollOnce (): Promise<void> {
      for (const { appid } of config.apps) {
        for (const spu of usage?.spuIds ?? []) {
          try {
            const { used, total } = await app.withAccessToken(
              appid,
              async token => await app.phoneCalls.usage(token, spu)
            )
            metrics.chargeUsed.set({ appid, spu }, used)
            metrics.chargeTotal.set({ appid, spu }, total)
          } catch (err) {
            const se = toServiceError(err)
            // The gauges keep their last reading: an alert on them stays true while WeChat is away.
            app.log.warn({ appid, spu, error: se.code, wechat_errcode: se.wechatErrcode }, 'phone usage poll failed')
          }
        }
      }
    }

    const tick = (): void => {
      running ??= pollOnce().finally(() => {
        running = undefined
      })
    }
    app.addHook('onReady', async () => {
      tick()
      timer = setInterval(tick, usage.pollMs)
      timer.unref()
    })
    app.addHook('onClose', async () => {
      clearInterval(timer)
      await running
    })
  },
  { name: 'phone-usage', dependencies: ['tokens'] }
)
