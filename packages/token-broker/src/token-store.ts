import type { RedisClient } from '@wxlogin/service-kit'

export interface TokenRecord {
  token: string
  /** Unix milliseconds. */
  expiresAt: number
  /** Orders refreshes cluster-wide: a record with a lower seq never replaces a higher one. */
  seq: number
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
  /** True for the first claim of `name` within `ttlMs`, cluster-wide; false after. */
  claim: (name: string, ttlMs: number) => Promise<boolean>
  onUpdate: (listener: (appid: string) => void) => void
}

export class MemoryTokenStore implements TokenStore {
  readonly shared = false
  private readonly records = new Map<string, TokenRecord>()
  private seq = 0
  private readonly listeners: Array<(appid: string) => void> = []

  available (): boolean { return true }
  async get (appid: string): Promise<TokenRecord | null> { return this.records.get(appid) ?? null }
  async nextSeq (): Promise<number> {
    this.seq = Math.max(this.seq + 1, Date.now())
    return this.seq
  }

  async setIfNewer (appid: string, rec: TokenRecord): Promise<boolean> {
    const cur = this.records.get(appid)
    if (cur !== undefined && cur.seq > rec.seq) return false
    this.records.set(appid, rec)
    return true
  }

  async publish (appid: string): Promise<void> { for (const l of this.listeners) l(appid) }
  onUpdate (listener: (appid: string) => void): void { this.listeners.push(listener) }

  private readonly claims = new Map<string, number>()
  async claim (name: string, ttlMs: number): Promise<boolean> {
    const now = Date.now()
    if ((this.claims.get(name) ?? 0) > now) return false
    this.claims.set(name, now + ttlMs)
    return true
  }
}

// Keeps the record only if none with a higher seq is stored; expires with the token.
const SET_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and tonumber(obj.seq) and tonumber(obj.seq) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`

// Strictly increasing, and never behind the wall clock, so a record fetched while Redis was
// down (seq = Date.now()) orders sensibly against the ones fetched while it was up.
const NEXT_SEQ = `
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if v < floor then
  redis.call('SET', KEYS[1], ARGV[1])
  return floor
end
return v
`

export class RedisTokenStore implements TokenStore {
  readonly shared = true
  private readonly listeners: Array<(appid: string) => void> = []
  private readonly channel: string

  constructor (private readonly client: RedisClient, private readonly subscriber: RedisClient, private readonly prefix: string) {
    this.channel = `${prefix}token-updated`
  }

  /** Subscribes; node-redis re-subscribes by itself after a reconnect. */
  async start (): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel, (appid: string) => { for (const l of this.listeners) l(appid) })
    } catch {
      // Redis is down at start: subscribe again once the subscriber connects.
      this.subscriber.once('ready', () => { this.start().catch(() => {}) })
    }
  }

  available (): boolean { return this.client.isReady }

  private key (appid: string): string { return `${this.prefix}token:${appid}` }

  async get (appid: string): Promise<TokenRecord | null> {
    const raw = await this.client.get(this.key(appid))
    if (raw === null) return null
    try {
      const o = JSON.parse(raw) as TokenRecord
      if (typeof o.token !== 'string' || typeof o.expiresAt !== 'number' || typeof o.seq !== 'number') return null
      return o
    } catch {
      return null
    }
  }

  async nextSeq (appid: string): Promise<number> {
    const v = await this.client.eval(NEXT_SEQ, { keys: [`${this.prefix}seq:${appid}`], arguments: [String(Date.now())] })
    return Number(v)
  }

  async setIfNewer (appid: string, rec: TokenRecord): Promise<boolean> {
    const ttl = Math.max(1, rec.expiresAt - Date.now())
    const r = await this.client.eval(SET_IF_NEWER, { keys: [this.key(appid)], arguments: [JSON.stringify(rec), String(rec.seq), String(ttl)] })
    return Number(r) === 1
  }

  async publish (appid: string): Promise<void> {
    await this.client.publish(this.channel, appid)
  }

  async claim (name: string, ttlMs: number): Promise<boolean> {
    return (await this.client.set(`${this.prefix}claim:${name}`, '1', { NX: true, PX: ttlMs })) === 'OK'
  }

  onUpdate (listener: (appid: string) => void): void { this.listeners.push(listener) }
}
