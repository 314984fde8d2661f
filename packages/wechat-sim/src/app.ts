import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import controlRoutes from './control-routes.js'
import type { SimContext } from './context.js'
import { FaultQueue, type Fault } from './faults.js'
import { SimState, type Api, type SimOptions } from './state.js'
import wechatRoutes from './wechat-routes.js'
import type { PushTarget } from './push-sender.js'

export { SimState, FaultQueue }
export type { Api, SimOptions, Fault }

export interface SimulatorOptions extends SimOptions {
  /** Added to every WeChat API call, milliseconds: a stand-in for the Internet's round trip. */
  latencyMs?: number
  logger?: FastifyServerOptions['logger']
  /** Per appid, the push URL, Token, EncodingAESKey and mode the console holds (for /__sim/push). */
  pushTargets?: Record<string, PushTarget>
}

export interface Simulator {
  app: FastifyInstance
  state: SimState
  faults: FaultQueue
}

/** The prefix of the control API: a path the real WeChat never serves. */
export const CONTROL_PREFIX = '/__sim'

export function createSimulator (options: SimulatorOptions = {}): Simulator {
  const sim: SimContext = {
    state: new SimState(options),
    faults: new FaultQueue(),
    latency: { ms: options.latencyMs ?? 0, initialMs: options.latencyMs ?? 0 },
    pushTargets: new Map(Object.entries(options.pushTargets ?? {}))
  }
  const app = Fastify({ logger: options.logger ?? false })
  app.register(wechatRoutes, { sim })
  app.register(controlRoutes, { sim, prefix: CONTROL_PREFIX })
  return { app, state: sim.state, faults: sim.faults }
}
