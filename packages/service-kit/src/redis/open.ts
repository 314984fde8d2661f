import type { FastifyInstance } from 'fastify'
import { RedisHandle } from './handle.js'
import type { RedisConnection } from './connection.js'

/**
 * The Redis a service's stores share, started, and closed with the app; or null when no Redis
 * is configured, with `memoryWarning` logged (the stores then live in this process: one replica).
 */
export function openStoreRedis (
  app: FastifyInstance,
  connection: RedisConnection | undefined,
  memoryWarning: string
): RedisHandle | null {
  if (connection === undefined) {
    app.log.warn(memoryWarning)
    return null
  }
  const redis = new RedisHandle(connection, app.log, 'store').start()
  app.addHook('onClose', async () => {
    await redis.close()
  })
  return redis
}
