import { createClient } from 'redis'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, type EnvReader } from './env.js'

export type RedisClient = ReturnType<typeof createClient>

/** How to reach Redis: the URL, and the credentials and TLS that apply where the URL names none. */
export interface RedisConnection {
  url: string
  username?: string | undefined
  password?: string | undefined
  tls: boolean
  /** Every command fails after this long: a frozen server must not hang requests. */
  commandTimeoutMs: number
}

/**
 * REDIS_URL (or REDIS_URL_FILE: it may carry a password), REDIS_USERNAME, REDIS_PASSWORD (or
 * REDIS_PASSWORD_FILE), REDIS_TLS, REDIS_COMMAND_TIMEOUT_MS. Undefined when REDIS_URL is unset.
 */
export function readRedisConnection (r: EnvReader): RedisConnection | undefined {
  const url = r.secret('REDIS_URL')
  if (url === undefined) {
    for (const name of ['REDIS_USERNAME', 'REDIS_PASSWORD']) {
      if (r.has(name)) throw new ConfigError(name, 'is set but REDIS_URL is not')
    }
    return undefined
  }
  checkRedisUrl('REDIS_URL', url)
  return {
    url: url.replace(/\/+$/, ''),
    username: r.optionalString('REDIS_USERNAME'),
    password: r.secret('REDIS_PASSWORD'),
    tls: r.bool('REDIS_TLS', false),
    commandTimeoutMs: r.int('REDIS_COMMAND_TIMEOUT_MS', 1000, { min: 50, max: 60_000 })
  }
}

export function checkRedisUrl (name: string, url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(name, 'is not a valid URL')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new ConfigError(name, 'must be a redis: or rediss: URL')
}

export interface RedisOptions {
  /** Longest pause between reconnection attempts. */
  maxReconnectDelayMs?: number
  connectTimeoutMs?: number
}

/**
 * A node-redis client that fails fast instead of queueing while disconnected (a queue
 * would turn a Redis outage into hung requests), bounds every command (a frozen server keeps
 * the socket open but never answers), reconnects forever with capped backoff, and logs errors
 * at most once per outage. The URL and password are never logged.
 */
export function createRedis (conn: RedisConnection, log: FastifyBaseLogger, name: string, opts: RedisOptions = {}): RedisClient {
  const maxDelay = opts.maxReconnectDelayMs ?? 2000
  const parsed = new URL(conn.url)
  const urlHasCredentials = parsed.username !== '' || parsed.password !== ''
  const client = createClient({
    url: conn.url,
    ...(urlHasCredentials ? {} : { username: conn.username, password: conn.password }),
    disableOfflineQueue: true,
    commandOptions: { timeout: conn.commandTimeoutMs },
    socket: {
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      ...(conn.tls ? { tls: true as const } : {}),
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
  return bounded(client, conn.commandTimeoutMs)
}

/** Raised when Redis took longer than the command timeout to answer. */
export class RedisTimeoutError extends Error {
  readonly code = 'REDIS_TIMEOUT'
  constructor (ms: number) {
    super(`Redis did not answer within ${ms} ms`)
    this.name = 'RedisTimeoutError'
  }
}

/** Calls that manage the connection itself; they have their own time limits or none. */
const UNBOUNDED = new Set<PropertyKey>(['connect', 'quit', 'close', 'disconnect', 'destroy', 'duplicate',
  'subscribe', 'unsubscribe', 'pSubscribe', 'pUnsubscribe', 'sSubscribe', 'sUnsubscribe', 'SUBSCRIBE', 'UNSUBSCRIBE'])

async function withTimeout<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new RedisTimeoutError(ms)), ms) })
  try {
    return await Promise.race([p, expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Every command that returns a promise fails after `ms`. node-redis' own command timeout only
 * covers the wait before a command is written; once written to a frozen server it would wait
 * forever. A late reply still arrives in order and is dropped.
 */
function bounded (client: RedisClient, ms: number): RedisClient {
  const wrapped = new Map<PropertyKey, unknown>()
  return new Proxy(client, {
    get (target, prop) {
      const value: unknown = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      let fn = wrapped.get(prop)
      if (fn === undefined) {
        // Called on the client itself, never on the proxy: node-redis uses private fields.
        const method = value as (...a: unknown[]) => unknown
        fn = UNBOUNDED.has(prop)
          ? method.bind(target)
          : (...args: unknown[]) => {
              const r = method.apply(target, args)
              return r instanceof Promise ? withTimeout(r, ms) : r
            }
        wrapped.set(prop, fn)
      }
      return fn
    }
  })
}

/** Starts connecting without waiting: a service starts degraded rather than not at all. */
export function connectInBackground (client: RedisClient): void {
  client.connect().catch(() => { /* reported through the 'error' listener */ })
}

/**
 * Whether a client can serve right now. `isReady` stays true while a server is frozen
 * (SIGSTOP, a full disk, a partition without RST): the socket is open, nothing answers. A
 * PING every interval, bounded by the command timeout, tells the difference within about
 * interval + timeout. After `reconnectAfterMs` without an answer the socket is replaced: replies
 * that never come would otherwise pile up, and a dead peer is only found by a new connection.
 */
export class RedisHealth {
  private lastAnswer = Date.now()
  private answered = true
  private timer: NodeJS.Timeout | undefined
  private inflight = false

  constructor (
    private readonly client: RedisClient,
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs = 1000,
    private readonly reconnectAfterMs = 5000
  ) {}

  start (): this {
    this.timer = setInterval(() => { this.probe() }, this.intervalMs)
    this.timer.unref()
    return this
  }

  private probe (): void {
    if (this.inflight || !this.client.isOpen) return
    if (!this.client.isReady) {
      this.answered = false
      return
    }
    this.inflight = true
    this.client.ping().then(
      () => {
        this.answered = true
        this.lastAnswer = Date.now()
      },
      () => {
        this.answered = false
        if (Date.now() - this.lastAnswer >= this.reconnectAfterMs) this.reconnect()
      }
    ).finally(() => { this.inflight = false })
  }

  private reconnect (): void {
    this.log.warn({ silentForMs: Date.now() - this.lastAnswer }, 'redis is not answering; opening a new connection')
    this.lastAnswer = Date.now()
    this.client.destroy()
    connectInBackground(this.client)
  }

  /** True while connected and the last PING was answered in time. */
  ok (): boolean {
    return this.client.isReady && this.answered
  }

  /** Why not ok, for /readyz; undefined when ok. */
  problem (): string | undefined {
    if (!this.client.isReady) return 'unreachable'
    if (!this.answered) return 'not answering (PING timed out)'
    return undefined
  }

  stop (): void {
    clearInterval(this.timer)
  }
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
