import type { RedisHandle } from '@wxlogin/service-kit'
import type { BrokerKeys, CredentialKeys } from '../keys.js'

export interface TokenRecord {
  token: string
  /** Unix milliseconds. */
  expiresAt: number
  /** Orders refreshes cluster-wide: a record with a lower seq never replaces a higher one. */
  seq: number
  /**
   * When a broker first got this token from WeChat (Unix ms); a normal-mode stable_token call
   * that returns the same token keeps it. Compare-and-refresh by age reads it.
   */
  fetchedAt?: number
}

/** A refresh failure every replica remembers for a while (wrong secret, IP not whitelisted). */
export interface RememberedFailure {
  code: string
  message: string
  status: number
  wechatErrcode?: number
}

/** WeChat's tokens live 7,200 s; anything promising more was not written by a broker. */
export const MAX_TOKEN_LIFETIME_MS = 7200_000 + 60_000
/** Sequence numbers start at the wall clock and grow by one a refresh. */
const MAX_SEQ_LEAD_MS = 86_400_000

/**
 * A record a broker could have written: a token, an expiry within a token's lifetime, and a
 * sequence number not far ahead of the clock. Anything else (a record planted by another
 * writer, say a far-future one meant to pin every replica to a fake token) is not served and
 * does not block the next refresh.
 */
export function plausible (rec: TokenRecord, now = Date.now()): boolean {
  return (
    typeof rec.token === 'string' &&
    rec.token.length > 0 &&
    rec.token.length <= 2048 &&
    Number.isFinite(rec.expiresAt) &&
    rec.expiresAt <= now + MAX_TOKEN_LIFETIME_MS &&
    Number.isSafeInteger(rec.seq) &&
    rec.seq <= now + MAX_SEQ_LEAD_MS
  )
}

/** Where tokens live between replicas. The memory store is the single-replica stand-in. */
export interface TokenStore {
  readonly shared: boolean
  available: () => boolean
  get: (appid: string) => Promise<TokenRecord | null>
  /** A sequence number taken before an upstream call; later calls get higher numbers. */
  nextSeq: (appid: string) => Promise<number>
  /** Stores `rec` unless a record with a higher seq is there; true when stored. */
  setIfNewer: (appid: string, rec: TokenRecord) => Promise<boolean>
  /** Tells every replica that `appid` has a new token. */
  publish: (appid: string) => Promise<void>
  /** True for the first claim of `name` of an app within `ttlMs`, cluster-wide; false after. */
  claim: (appid: string, name: string, ttlMs: number) => Promise<boolean>
  /** Ends a claim early (its work failed: the next caller may claim at once). */
  releaseClaim: (appid: string, name: string) => Promise<void>
  /**
   * Counts one use of `name` unless `limit` uses are already counted (the count lives `ttlMs`
   * from the first); `used` is the count after this call.
   */
  spend: (appid: string, name: string, limit: number, ttlMs: number) => Promise<{ used: number, allowed: boolean }>
  onUpdate: (listener: (appid: string) => void) => void
  /** Remembers a failed refresh for `ttlMs`, for every replica. */
  rememberFailure: (appid: string, failure: RememberedFailure, ttlMs: number) => Promise<void>
  /** The failure remembered for `appid`, if it has not expired. */
  recentFailure: (appid: string) => Promise<RememberedFailure | null>
  /** A short note for every replica (a token check's verdict), living `ttlMs`; `readNote` reads it. */
  note: (appid: string, name: string, value: string, ttlMs: number) => Promise<void>
  readNote: (appid: string, name: string) => Promise<string | null>
}

/** Only what a broker writes is believed: a known error code, a short message, a 5xx status. */
export function plausibleFailure (f: unknown): f is RememberedFailure {
  const o = f as Record<string, unknown> | null
  return (
    typeof o === 'object' &&
    o !== null &&
    (o.code === 'wechat_error' || o.code === 'upstream_unavailable') &&
    typeof o.message === 'string' &&
    o.message.length <= 300 &&
    (o.status === 502 || o.status === 503) &&
    (o.wechatErrcode === undefined || Number.isSafeInteger(o.wechatErrcode))
  )
}

const SET_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and tonumber(obj.seq) and tonumber(obj.seq) > tonumber(ARGV[2])
    and tonumber(obj.seq) <= tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`

// Strictly increasing, and never behind the wall clock, so a record fetched while Redis was
// down (seq = Date.now()) orders sensibly against the ones fetched while it was up.
// A counter pushed implausibly far ahead (ARGV[2]) starts again from the clock.
const NEXT_SEQ = `
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if v < floor or v > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return floor
end
return v
`

const SPEND = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return { used, 0 } end
used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return { used, 1 }
`

/**
 * Tokens in Redis, in any mode. Every key of an app carries the app in a hash tag
 * (`wxbroker:{appid}:token`), so each script touches one slot of a Cluster; the update
 * channel is per app too, sharded in a Cluster.
 */
export class RedisTokenStore implements TokenStore {
  readonly shared = true
  private readonly listeners: Array<(appid: string) => void> = []

  /** `kind`: 'token' for access_tokens, 'ticket:jsapi' or 'ticket:wx_card' for tickets. */
  constructor (
    private readonly redis: RedisHandle,
    private readonly names: BrokerKeys,
    private readonly appids: string[],
    private readonly kind = 'token'
  ) {}

  private keys (appid: string): CredentialKeys {
    return this.names.credential(appid, this.kind)
  }

  /** Subscribes to every app's channel; node-redis re-subscribes by itself after a reconnect or a move. */
  async start (): Promise<void> {
    for (const appid of this.appids) {
      this.subscribe(appid).catch(() => {})
    }
  }

  private async subscribe (appid: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.redis.subscribe(this.keys(appid).channel, () => {
          for (const l of this.listeners) l(appid)
        })
        return
      } catch {
        // Redis is down at start: polling covers the gap until the subscription is in place.
        await new Promise(resolve => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2000)))
      }
    }
  }

  available (): boolean {
    return this.redis.ok()
  }

  /** The JSON value at `key` if `check` believes it; anything else (absent, garbled, planted) is null. */
  private async readChecked<T>(key: string, check: (v: T) => boolean): Promise<T | null> {
    const raw = await this.redis.cmd.get(key)
    if (raw === null) return null
    try {
      const value = JSON.parse(raw) as T
      return check(value) ? value : null
    } catch {
      return null
    }
  }

  async get (appid: string): Promise<TokenRecord | null> {
    return await this.readChecked<TokenRecord>(this.keys(appid).record, rec => plausible(rec))
  }

  async nextSeq (appid: string): Promise<number> {
    const now = Date.now()
    const v = await this.redis.cmd.eval(NEXT_SEQ, {
      keys: [this.keys(appid).seq],
      arguments: [String(now), String(now + MAX_SEQ_LEAD_MS)]
    })
    return Number(v)
  }

  async setIfNewer (appid: string, rec: TokenRecord): Promise<boolean> {
    const ttl = Math.max(1, rec.expiresAt - Date.now())
    const r = await this.redis.cmd.eval(SET_IF_NEWER, {
      keys: [this.keys(appid).record],
      arguments: [JSON.stringify(rec), String(rec.seq), String(ttl), String(Date.now() + MAX_SEQ_LEAD_MS)]
    })
    return Number(r) === 1
  }

  async publish (appid: string): Promise<void> {
    await this.redis.publish(this.keys(appid).channel, appid)
  }

  async claim (appid: string, name: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.cmd.set(this.names.claim(appid, name), '1', { NX: true, PX: ttlMs })) === 'OK'
  }

  async releaseClaim (appid: string, name: string): Promise<void> {
    await this.redis.cmd.del(this.names.claim(appid, name))
  }

  async spend (appid: string, name: string, limit: number, ttlMs: number): Promise<{ used: number, allowed: boolean }> {
    const [used, allowed] = (await this.redis.cmd.eval(SPEND, {
      keys: [this.names.budget(appid, name)],
      arguments: [String(limit), String(ttlMs)]
    })) as [number, number]
    return { used: Number(used), allowed: Number(allowed) === 1 }
  }

  onUpdate (listener: (appid: string) => void): void {
    this.listeners.push(listener)
  }

  async rememberFailure (appid: string, failure: RememberedFailure, ttlMs: number): Promise<void> {
    await this.redis.cmd.set(this.keys(appid).failure, JSON.stringify(failure), { PX: Math.max(1, ttlMs) })
  }

  async recentFailure (appid: string): Promise<RememberedFailure | null> {
    return await this.readChecked<RememberedFailure>(this.keys(appid).failure, plausibleFailure)
  }

  async note (appid: string, name: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.cmd.set(this.names.note(appid, name), value, { PX: Math.max(1, ttlMs) })
  }

  async readNote (appid: string, name: string): Promise<string | null> {
    return await this.redis.cmd.get(this.names.note(appid, name))
  }
}
