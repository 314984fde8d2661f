import type { BrokerClientConfig } from '../config.js'

interface Bucket {
  tokens: number
  at: number
  inFlight: number
}

/** Why a call was not let through: over `gateway_rate` or over `gateway_concurrency`. */
export type Refusal = 'rate' | 'concurrency'

/**
 * Each client's gateway bounds at this broker instance: `gateway_rate` calls a second (a token
 * bucket holding one second's worth, so a burst of that many passes) and `gateway_concurrency`
 * calls in flight. Per instance, not cluster-wide: a bound needs no store round trip on every
 * call, and N instances allow N times the rate (docs/gateway.md says so).
 */
export class GatewayLimits {
  private readonly buckets = new Map<string, Bucket>()

  constructor (private readonly now: () => number = Date.now) {}

  /** A release to call when the call ends, or why it may not start. */
  acquire (client: BrokerClientConfig): (() => void) | Refusal {
    const { gatewayRate: rate, gatewayConcurrency: concurrency } = client
    if (rate === undefined && concurrency === undefined) return () => {}
    let b = this.buckets.get(client.name)
    if (b === undefined) {
      b = { tokens: rate ?? 0, at: this.now(), inFlight: 0 }
      this.buckets.set(client.name, b)
    }
    if (concurrency !== undefined && b.inFlight >= concurrency) return 'concurrency'
    if (rate !== undefined) {
      const now = this.now()
      b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate)
      b.at = now
      if (b.tokens < 1) return 'rate'
      b.tokens -= 1
    }
    b.inFlight++
    let released = false
    const bucket = b
    return () => {
      if (released) return
      released = true
      bucket.inFlight--
    }
  }
}
