import { createClient } from 'redis'
import type { FastifyBaseLogger } from 'fastify'

export type RedisClient = ReturnType<typeof createClient>

export interface RedisOptions {
  /** Longest pause between reconnection attempts. */
  maxReconnectDelayMs?: number
  connectTimeoutMs?: number
}

/**
 * A node-redis client that fails fast instead of queueing while disconnected (a queue
 * would turn a Redis outage into hung requests), reconnects forever with capped backoff,
 * and logs errors at most once per outage. The URL is never logged: it may hold a password.
 */
export function createRedis (url: string, log: FastifyBaseLogger, name: string, opts: RedisOptions = {}): RedisClient {
  const maxDelay = opts.maxReconnectDelayMs ?? 2000
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay)
    }
  })
  let down = false
  client.on('error', (err: Error) => {
    if (!down) log.warn({ redis: name, errName: err.name, errCode: (err as NodeJS.ErrnoException).code }, 'redis connection lost; retrying')
    down = true
  })
  client.on('ready', () => {
    if (down) log.info({ redis: name }, 'redis connection restored')
    down = false
  })
  return client
}

/** Starts connecting without waiting: a service starts degraded rather than not at all. */
export function connectInBackground (client: RedisClient): void {
  client.connect().catch(() => { /* reported through the 'error' listener */ })
}

/**
 * Closes gracefully when connected (pending replies arrive), at once otherwise: QUIT on a
 * client that is reconnecting would wait for a server that may never come back.
 */
export async function closeRedis (client: RedisClient, graceMs = 2000): Promise<void> {
  if (!client.isOpen) return
  if (!client.isReady) {
    client.destroy()
    return
  }
  let timer: NodeJS.Timeout | undefined
  const quit = client.quit().then(() => true, () => false)
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), graceMs) })
  const clean = await Promise.race([quit, timeout])
  clearTimeout(timer)
  if (!clean && client.isOpen) client.destroy()
}
