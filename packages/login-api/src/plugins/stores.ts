import fp from 'fastify-plugin'
import { closeRedis, connectInBackground, createRedis, type RedisClient } from '@wxlogin/service-kit'
import type { LoginConfig } from '../config.js'
import { MemoryUserStore, RedisUserStore, type UserStore } from '../user-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserStore
    /** The Redis client shared by users, sessions and rate limits; null in memory mode. */
    redis: RedisClient | null
  }
}

export default fp<{ config: LoginConfig }>(async (app, { config }) => {
  if (config.redisUrl === undefined) {
    app.log.warn('REDIS_URL is unset: users, sessions and rate limits live in this process only; run a single replica')
    app.decorate('redis', null)
    app.decorate('users', new MemoryUserStore())
    return
  }
  const client = createRedis(config.redisUrl, app.log, 'store')
  connectInBackground(client)
  app.decorate('redis', client)
  app.decorate('users', new RedisUserStore(client, config.redisKeyPrefix))
  app.addHook('onClose', async () => { await closeRedis(client) })
}, { name: 'stores' })
