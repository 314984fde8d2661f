import type { RedisHandle } from '@wxlogin/service-kit'
import type { BrokerKeys } from '../keys.js'
import { delivered, SEEN_TTL_MS, type Delivered, type WechatEventStore } from './event-store.js'
import type { PushMessage } from './push-message.js'

// KEYS: the push's mark, the stream. ARGV: the mark's life (ms), the oldest id kept (retention),
// then the entry's fields. The mark and the entry are written together or not at all.
const ADD = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', unpack(ARGV, 3))
return 1
`

// KEYS: the stream. ARGV: the client (its consumer group), the visibility timeout (ms), max.
// Its overdue unacknowledged entries first (XAUTOCLAIM), then new ones; a new client starts at
// the oldest entry kept.
const RECEIVE = `
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local max = tonumber(ARGV[3])
local out = {}
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], 'broker', ARGV[2], '0-0', 'COUNT', max)
for _, e in ipairs(claimed[2]) do
  if e and e[2] then table.insert(out, e) end
end
if #out < max then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'broker', 'COUNT', max - #out, 'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do table.insert(out, e) end
  end
end
return out
`

// KEYS: the stream. ARGV: the client, then the ids.
const ACK = `
local ok, n = pcall(redis.call, 'XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
if ok then return n end
return 0
`

/** A stream in the broker's Redis (one slot with the marks: a Cluster is fine). */
export class RedisEventStore implements WechatEventStore {
  constructor (
    private readonly redis: RedisHandle,
    private readonly keys: BrokerKeys,
    private readonly visibilityMs: number,
    private readonly retentionMs: number
  ) {}

  async add (push: PushMessage): Promise<'stored' | 'duplicate'> {
    const stream = this.keys.wechatEvents
    const fields = {
      appid: push.appid,
      event: push.event,
      openid: push.openid,
      create_time: String(push.createTime),
      message: JSON.stringify(push.message)
    }
    const args = [String(SEEN_TTL_MS), String(Date.now() - this.retentionMs), ...Object.entries(fields).flat()]
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): WeChat is told success after that.
    const r = await this.redis.durable(
      stream,
      this.redis.cmd.eval(ADD, {
        keys: [this.keys.wechatEventSeen(push.appid, push.dedupeId), stream],
        arguments: args
      })
    )
    return Number(r) === 1 ? 'stored' : 'duplicate'
  }

  async receive (client: string, max: number): Promise<Delivered[]> {
    const stream = this.keys.wechatEvents
    const r = (await this.redis.durable(
      stream,
      this.redis.cmd.eval(RECEIVE, { keys: [stream], arguments: [client, String(this.visibilityMs), String(max)] })
    )) as Array<[string, string[]]>
    return r.map(([id, flat]) => {
      const f: Record<string, string> = {}
      for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string
      return delivered(id, {
        appid: f.appid ?? '',
        event: f.event ?? '',
        openid: f.openid ?? '',
        createTime: Number(f.create_time),
        message: JSON.parse(f.message ?? '{}') as Record<string, unknown>
      })
    })
  }

  async ack (client: string, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0
    const stream = this.keys.wechatEvents
    return Number(
      await this.redis.durable(stream, this.redis.cmd.eval(ACK, { keys: [stream], arguments: [client, ...ids] }))
    )
  }
}
