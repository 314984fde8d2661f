import type { FaultQueue } from './faults.js'
import type { SimState } from './state.js'
import type { PushTarget } from './push-sender.js'

/** What the simulator's route plugins share: its state, the queued faults, the added latency. */
export interface SimContext {
  state: SimState
  faults: FaultQueue
  /** `ms` is added to every WeChat call; PUT /__sim/latency changes it, reset restores `initialMs`. */
  latency: { ms: number, initialMs: number }
  /** Where each app's pushes go, as its console says (SIM_APPS' push_* fields): POST /__sim/push defaults. */
  pushTargets: Map<string, PushTarget>
}
