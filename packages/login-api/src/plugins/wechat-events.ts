import fp from 'fastify-plugin'
import { BrokerError } from '@wxlogin/broker-client'
import { applyWechatEvent } from '../login/withdrawals.js'

/** How long one receive waits at the broker for a push. */
const WAIT_SECONDS = 5
/** After a failure to reach the broker; after a 403 (this client receives no events), longer. */
const RETRY_MS = 1000
const FORBIDDEN_RETRY_MS = 300_000

/**
 * WECHAT_EVENTS_RECEIVE: WeChat's pushes, received from the broker (long polls) and honoured
 * (login/withdrawals.ts). Each is acknowledged once applied, so one that fails is delivered again;
 * several instances share the work (each push goes to one of them). Stops with the app.
 */
export default fp(
  async app => {
    if (!app.loginConfig.wechatEventsReceive) return
    const metrics = app.loginMetrics
    const state = { closing: false }
    let wake: (() => void) | undefined
    const pause = async (ms: number): Promise<void> => {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, ms)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }

    async function loop (): Promise<void> {
      while (!state.closing) {
        try {
          const events = await app.broker.receiveEvents({ max: 20, waitSeconds: WAIT_SECONDS })
          const done: string[] = []
          for (const e of events) {
            try {
              const result = await applyWechatEvent(app, e)
              metrics.wechatEvents.inc({ event: e.event, result })
              metrics.wechatEventsLag.set(Math.max(0, Date.now() / 1000 - e.create_time))
              done.push(e.id)
            } catch (err) {
              // Left unacknowledged: the broker delivers it again after its visibility timeout.
              metrics.wechatEvents.inc({ event: e.event, result: 'failed' })
              app.log.warn({ event: e.event, err: (err as Error).message }, 'a WeChat push could not be applied yet')
            }
          }
          await app.broker.ackEvents(done)
        } catch (err) {
          if (state.closing) return
          if (err instanceof BrokerError && err.statusCode === 403) {
            app.log.warn(
              'WECHAT_EVENTS_RECEIVE is on, and the broker gives this client no events ("events" in BROKER_CLIENTS)'
            )
            await pause(FORBIDDEN_RETRY_MS)
          } else {
            app.log.warn({ err: (err as Error).message }, 'WeChat pushes: the broker cannot be reached; trying again')
            await pause(RETRY_MS)
          }
        }
      }
    }

    let running: Promise<void> | undefined
    app.addHook('onReady', async () => {
      running = loop()
    })
    app.addHook('onClose', async () => {
      state.closing = true
      wake?.()
      // A receive in flight ends within its wait; what it brought is applied and acknowledged.
      await running
    })
  },
  { name: 'wechat-events', dependencies: ['upstreams', 'stores'] }
)
