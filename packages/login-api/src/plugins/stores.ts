import fp from 'fastify-plugin'
import { RedisHandle } from '@wxlogin/service-kit'
import type { LoginConfig } from '../config.js'
import { MemoryUserStore, RedisUserStore, type UserStore } from '../user-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserStore
    /** The Redis shared by users, sessions and rate limits (any mode); null in memory mode. */
    redis: RedisHandle | null
    /** Why the store cannot serve right now (unreachable, frozen); undefined while it can. */
    storeProblem: () => string | undefined
  }
}

export default fp<{ config: LoginConfig }>(async (app, { config }) => {
  if (config.redis === undefined) {
    app.log.warn('No Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): users, sessions and rate limits live in this process only; run a single replica')
    app.decorate('redis', null)
    app.decorate('users', new MemoryUserStore())
    app.decorate('storeProblem', () => undefined)
    return
  }
  const redis = new RedisHandle(config.redis, app.log, 'store').start()
  app.decorate('redis', redis)
  app.decorate('users', new RedisUserStore(redis, config.redisKeyPrefix))
  app.decorate('storeProblem', () => redis.problem())
  app.addHook('onClose', async () => { await redis.close() })
}, { name: 'stores' })
