import type { RedisCommands } from '@wxlogin/service-kit'

type IncrCallback = (err: Error | null, res: { current: number, ttl: number } | null) => void

// The same counting @fastify/rate-limit's own RedisStore does (fixed window from the first hit).
const INCR = `
local current = redis.call('INCR', KEYS[1])
local ttl
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
  end
end
return { current, ttl }
`

/**
 * A @fastify/rate-limit store on node-redis. The plugin's bundled RedisStore needs ioredis
 * (defineCommand); this is the same contract: `new Store(params)`, `incr`, `child`.
 */
export function nodeRedisRateLimitStore (client: RedisCommands, prefix: string): new (params: unknown) => object {
  class NodeRedisStore {
    constructor (
      _params: unknown,
      private readonly key = prefix
    ) {}

    incr (key: string, cb: IncrCallback, timeWindow: number): void {
      client.eval(INCR, { keys: [this.key + key], arguments: [String(timeWindow)] }).then(
        r => {
          const [current, ttl] = r as [number, number]
          cb(null, { current: Number(current), ttl: Number(ttl) })
        },
        (err: unknown) => {
          cb(err instanceof Error ? err : new Error('rate limit store error'), null)
        }
      )
    }

    child (routeOptions: { routeInfo?: { method?: string, url?: string } }): NodeRedisStore {
      const info = routeOptions.routeInfo ?? {}
      return new NodeRedisStore(routeOptions, `${this.key}${info.method ?? ''}${info.url ?? ''}-`)
    }
  }
  return NodeRedisStore
}
