import type { FaultQueue } from './faults.js'
import type { SimState } from './state.js'

/** What the simulator's route plugins share: its state, the queued faults, the added latency. */
export interface SimContext {
  state: SimState
  faults: FaultQueue
  /** `ms` is added to every WeChat call; PUT /__sim/latency changes it, reset restores `initialMs`. */
  latency: { ms: number, initialMs: number }
}
