import fp from 'fastify-plugin'
import { closeRedis, connectInBackground, createRedis, RedisHealth, type RedisClient } from '@wxlogin/service-kit'
import type { LoginConfig } from '../config.js'
import { MemoryUserStore, RedisUserStore, type UserStore } from '../user-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserStore
    /** The Redis client shared by users, sessions and rate limits; null in memory mode. */
    redis: RedisClient | null
    /** Why the store cannot serve right now (unreachable, frozen); undefined while it can. */
    storeProblem: () => string | undefined
  }
}

export default fp<{ config: LoginConfig }>(async (app, { config }) => {
  if (config.redis === undefined) {
    app.log.warn('REDIS_URL is unset: users, sessions and rate limits live in this process only; run a single replica')
    app.decorate('redis', null)
    app.decorate('users', new MemoryUserStore())
    app.decorate('storeProblem', () => undefined)
    return
  }
  const client = createRedis(config.redis, app.log, 'store')
  connectInBackground(client)
  const health = new RedisHealth(client, app.log).start()
  app.decorate('redis', client)
  app.decorate('users', new RedisUserStore(client, config.redisKeyPrefix))
  app.decorate('storeProblem', () => {
    const p = health.problem()
    return p === undefined ? undefined : `redis ${p}`
  })
  app.addHook('onClose', async () => {
    health.stop()
    await closeRedis(client)
  })
}, { name: 'stores' })
