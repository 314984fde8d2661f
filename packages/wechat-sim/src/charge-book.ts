import type { Outcome } from './apis.js'

/** What /wxa/charge/usage/get answers: the sim's own counts, as 64-bit numbers in strings. */
export interface ChargeUsage {
  effectiveUse: string
  all: string
  total: number
  detailList: never[]
}

/** The free trial WeChat gives the phone components (shared by all builds of an app). */
const TRIAL_QUOTA = 1000

/**
 * Paid capabilities as WeChat counts them: every phone number answered is billed to its app
 * (whatever the backend does with it). Quotas per spu are set through /__sim/charge-quota.
 */
export class ChargeBook {
  private readonly billed = new Map<string, number>()
  private readonly totals = new Map<string, number>()

  bill (appid: string): void {
    this.billed.set(appid, (this.billed.get(appid) ?? 0) + 1)
  }

  setTotal (spuId: string, total: number): void {
    this.totals.set(spuId, total)
  }

  usage (appid: string, spuId: unknown): Outcome<ChargeUsage> {
    // 10120700: spuId illegal, as WeChat answers it.
    if (typeof spuId !== 'string' || !/^\d{1,20}$/.test(spuId)) return { ok: false, errcode: 10120700 }
    return {
      ok: true,
      value: {
        effectiveUse: String(this.billed.get(appid) ?? 0),
        all: String(this.totals.get(spuId) ?? TRIAL_QUOTA),
        total: 0,
        detailList: []
      }
    }
  }

  reset (): void {
    this.billed.clear()
    this.totals.clear()
  }
}
