import { createClient, createCluster, createSentinel } from 'redis'
import type { FastifyBaseLogger } from 'fastify'
import { withTimeout } from '../timeout.js'
import { bounded, RedisTimeoutError, type RedisCommands } from './commands.js'
import { ReplicaWaiter, WAIT_TIMEOUT_MS } from './replication.js'
import { clientOptions, PROBE_INTERVAL_MS, type ClientOptions } from './client-options.js'
import { redisMode, type RedisConnection, type RedisMode } from './connection.js'

type Client = ReturnType<typeof createClient>
type Sentinel = ReturnType<typeof createSentinel>
type Cluster = ReturnType<typeof createCluster>
type Listener = (message: string) => void

/**
 * One logical Redis for a service, in any of the three modes. Every command is bounded by the
 * command timeout (node-redis' own timeout only covers the wait before a command is written;
 * once written to a frozen server it would wait forever). A PING each second tells a frozen
 * or unreachable server from a live one. Pub/sub is sharded in a Cluster, so a channel moves
 * with its slot. The URL and password are never logged.
 *
 * node-redis 5 does not find a new master by itself in two cases, so this does it:
 * - Cluster: the client of a dead master goes offline and its slots are never re-read (no
 *   MOVED can arrive); while a master does not answer, the topology is read again from the
 *   seed nodes.
 * - Sentinel: without `scanInterval` the client keeps reconnecting to the dead master
 *   (redis/node-redis #3127, #3061); the scan asks the sentinels each second.
 *
 * node-redis 6.3.1 was tried (December 2026): the Sentinel failover test passed, but a Cluster
 * whose master was SIGKILLed did not serve its slots again within 60 s, neither with the
 * rediscovery here nor with 6.x's own `topologyRefreshOnReconnectionAttemptStrategy` (RESP2 or
 * RESP3), so `redis` stays pinned at 5.12.1 (test/faults/redis-topologies.test.ts decides the next try).
 */
export class RedisHandle {
  readonly mode: RedisMode
  readonly cmd: RedisCommands
  private client: Client | undefined
  private sentinel: Sentinel | undefined
  private cluster: Cluster | undefined
  private subscriber: Client | undefined
  private readonly subscriptions = new Map<string, Listener>()
  private answered = true
  private lastAnswer = Date.now()
  private probing = false
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private down = false
  private scriptsResent = 0 // sent whole after a NOSCRIPT (see durable)
  private readonly options: ClientOptions
  private readonly waiter: ReplicaWaiter

  constructor (
    private readonly conn: RedisConnection,
    private readonly log: FastifyBaseLogger,
    private readonly name: string
  ) {
    this.mode = redisMode(conn)
    this.options = clientOptions(conn)
    let target: object
    if (this.mode === 'sentinel') {
      this.sentinel = this.newSentinel()
      target = this.sentinel
    } else if (this.mode === 'cluster') {
      this.cluster = createCluster(this.options.cluster)
      this.cluster.on('error', (err: Error) => { this.onError(err) })
      this.cluster.on('node-error', (err: Error) => { this.onError(err) })
      target = this.cluster
    } else {
      this.client = createClient(this.options.single)
      this.client.on('error', (err: Error) => { this.onError(err) })
      this.client.on('ready', () => { this.onReady() })
      target = this.client
    }
    const current = (): object => this.sentinel ?? this.cluster ?? target
    this.cmd = bounded(current, conn.commandTimeoutMs, () => { this.scriptsResent++ }) as unknown as RedisCommands
    const send = async (key: string, args: string[]): Promise<unknown> => await this.send(key, args)
    this.waiter = new ReplicaWaiter(conn.waitReplicas ?? 0, this.mode === 'cluster', send)
  }

  private newSentinel (): Sentinel {
    const sentinel = createSentinel(this.options.sentinel)
    sentinel.on('error', (err: Error) => { this.onError(err) })
    return sentinel
  }

  private onError (err: Error): void {
    const { name: errName, code: errCode } = err as NodeJS.ErrnoException
    const fields = { redis: this.name, mode: this.mode, errName, errCode }
    if (!this.down) this.log.warn(fields, 'redis connection lost; retrying')
    this.down = true
  }

  private onReady (): void {
    if (this.down) this.log.info({ redis: this.name, mode: this.mode }, 'redis connection restored')
    this.down = false
  }

  /** Connects in the background (a service starts degraded rather than not at all) and starts the probe. */
  start (): this {
    this.connect().catch(() => {})
    this.timer = setInterval(() => { this.probe() }, PROBE_INTERVAL_MS)
    this.timer.unref()
    return this
  }

  private async connect (): Promise<void> {
    // node-redis retries a single client by itself; Sentinel and Cluster clients give up when
    // no seed answers at start, so retry those here.
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        if (this.client !== undefined) await this.client.connect()
        else if (this.sentinel !== undefined) await this.sentinel.connect()
        else await this.cluster?.connect()
        this.onReady()
        return
      } catch (err) {
        if (this.client !== undefined) return
        this.onError(err as Error)
        await new Promise(resolve => setTimeout(resolve, Math.min(200 * 2 ** attempt, 2000)))
      }
    }
  }

  private isOpen (): boolean {
    if (this.client !== undefined) return this.client.isReady
    if (this.sentinel !== undefined) return this.sentinel.isReady
    return this.cluster?.isOpen ?? false
  }

  private async ping (): Promise<void> {
    if (this.client !== undefined) await this.client.ping()
    else if (this.sentinel !== undefined) await this.sentinel.ping()
    else {
      const cluster = this.cluster as Cluster
      // Every master: a dead one means some slots cannot be served.
      await Promise.all(cluster.masters.map(async m => { await (await cluster.nodeClient(m)).ping() }))
    }
  }

  private probe (): void {
    if (this.probing || this.closed) return
    if (!this.isOpen()) {
      // Not connected: node-redis retries, but a Sentinel client may retry a master that is
      // gone for good; after the same 5 s, start afresh.
      this.answered = false
      this.recover()
      return
    }
    this.probing = true
    withTimeout(this.ping(), this.conn.commandTimeoutMs, () => new RedisTimeoutError(this.conn.commandTimeoutMs)).then(
      () => {
        this.answered = true
        this.lastAnswer = Date.now()
      },
      () => {
        this.answered = false
        this.recover()
      }
    ).finally(() => { this.probing = false })
  }

  /** What to do when PING goes unanswered: see the class comment. */
  private recover (): void {
    if (this.cluster !== undefined) {
      const seeds = this.conn.clusterNodes ?? []
      const seed = seeds[Math.floor(Math.random() * seeds.length)]
      // No public API re-reads the slots; ClusterSlots.rediscover is what MOVED triggers.
      type Slots = { rediscover?: (startWith: object) => Promise<void> }
      const slots = (this.cluster as unknown as { _slots?: Slots })._slots
      slots?.rediscover?.({ options: { socket: { host: seed?.host, port: seed?.port } } })?.catch(() => {})
      return
    }
    if (Date.now() - this.lastAnswer < 5 * PROBE_INTERVAL_MS) return
    // Silent for 5 s: replace the connection. Replies that never come would pile up, and a
    // peer that vanished without a RST (a killed container, a partition) is only found this way;
    // a new Sentinel client asks the sentinels for the master afresh.
    const fields = { redis: this.name, mode: this.mode, silentForMs: Date.now() - this.lastAnswer }
    this.log.warn(fields, 'redis is not answering; opening a new connection')
    this.lastAnswer = Date.now()
    if (this.sentinel !== undefined) {
      const old = this.sentinel
      this.sentinel = this.newSentinel()
      Promise.resolve(old.destroy()).catch(() => {})
      this.connect().then(async () => { await this.resubscribe() }).catch(() => {})
    } else if (this.client !== undefined) {
      this.client.destroy()
      this.connect().catch(() => {})
    }
  }

  private async resubscribe (): Promise<void> {
    for (const [channel, listener] of this.subscriptions) await this.subscribe(channel, listener).catch(() => {})
  }

  /** True while connected and the last PING was answered in time. */
  ok (): boolean {
    return this.isOpen() && this.answered
  }

  /** Why not ok, naming the mode and the part, for /readyz; undefined when ok. */
  problem (): string | undefined {
    if (this.ok()) return undefined
    const what = this.mode === 'sentinel'
      ? `sentinel master ${this.conn.sentinelMaster ?? 'mymaster'}`
      : this.mode === 'cluster' ? 'cluster (a master)' : 'server'
    return `redis ${what} ${this.isOpen() ? 'not answering (PING timed out)' : 'unreachable'}`
  }

  /** Listens on a channel; in a Cluster a sharded channel, which follows its slot when it moves. */
  async subscribe (channel: string, listener: Listener): Promise<void> {
    this.subscriptions.set(channel, listener)
    if (this.cluster !== undefined) {
      await this.cluster.sSubscribe(channel, listener)
      return
    }
    if (this.sentinel !== undefined) {
      await this.sentinel.subscribe(channel, listener)
      return
    }
    // A subscribed connection can send nothing else: a second one, resubscribed by node-redis after reconnects.
    if (this.subscriber === undefined) {
      this.subscriber = (this.client as Client).duplicate()
      this.subscriber.on('error', () => { /* the command connection reports the outage */ })
      await this.subscriber.connect()
    }
    await this.subscriber.subscribe(channel, listener)
  }

  async publish (channel: string, message: string): Promise<void> {
    const p = this.cluster !== undefined
      ? this.cluster.sPublish(channel, message)
      : (this.sentinel ?? (this.client as Client)).publish(channel, message)
    await withTimeout(p, this.conn.commandTimeoutMs, () => new RedisTimeoutError(this.conn.commandTimeoutMs))
  }

  private async send (key: string, args: string[]): Promise<unknown> {
    const p = this.cluster !== undefined
      ? this.cluster.sendCommand(key, false, args)
      : this.sentinel !== undefined ? this.sentinel.sendCommand(false, args) : (this.client as Client).sendCommand(args)
    const ms = WAIT_TIMEOUT_MS + this.conn.commandTimeoutMs
    return await withTimeout(p as Promise<unknown>, ms, () => new RedisTimeoutError(ms))
  }

  /**
   * After a write that must survive a failover: waits until REDIS_WAIT_REPLICAS replicas have
   * it (WAIT), or fails. Where fewer replicas exist (a shard whose replica was just promoted),
   * it waits for those that do: refusing every write until a new replica is attached would
   * turn a failover into an outage. `key` routes to the write's node in a Cluster. Called in the
   * same tick as the write, it adds no round trip (see ReplicaWaiter).
   */
  async replicated (key: string): Promise<void> {
    await this.waiter.wait(key)
  }

  /** The write and its WAIT in one round trip (a script resent after it, another: see bounded); the answer. */
  async durable<T> (key: string, write: Promise<T>): Promise<T> {
    const resentBefore = this.scriptsResent
    const [answer] = await Promise.all([write, this.waiter.wait(key)])
    if (this.scriptsResent !== resentBefore) await this.waiter.wait(key)
    return answer
  }

  /**
   * A raw command sender for each master (the one master, or each master of a Cluster), for
   * tools that walk every key (SCAN); requests never need it.
   */
  async masters (): Promise<Array<(args: string[]) => Promise<unknown>>> {
    if (this.cluster !== undefined) {
      const cluster = this.cluster
      return await Promise.all(cluster.masters.map(async m => {
        const c = await cluster.nodeClient(m)
        return async (args: string[]) => await c.sendCommand(args)
      }))
    }
    const s = this.sentinel
    if (s !== undefined) return [async (args: string[]) => await s.sendCommand(false, args)]
    const c = this.client as Client
    return [async (args: string[]) => await c.sendCommand(args)]
  }

  /** Closes gracefully when connected, at once otherwise (QUIT on a reconnecting client could wait forever). */
  async close (graceMs = 2000): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    const all: Array<{ isOpen: boolean, close: () => Promise<unknown>, destroy: () => unknown }> = []
    if (this.subscriber !== undefined) all.push(this.subscriber)
    if (this.client !== undefined) all.push(this.client)
    if (this.sentinel !== undefined) all.push(this.sentinel)
    if (this.cluster !== undefined) all.push(this.cluster)
    await Promise.all(all.map(async c => {
      if (!c.isOpen) return
      if (!this.ok()) {
        await Promise.resolve(c.destroy()).catch(() => {})
        return
      }
      const timedOut = (): Error => new RedisTimeoutError(graceMs)
      const clean = await withTimeout(c.close(), graceMs, timedOut).then(() => true, () => false)
      if (!clean && c.isOpen) await Promise.resolve(c.destroy()).catch(() => {})
    }))
  }
}
