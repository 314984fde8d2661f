import Redlock, { ExecutionError, ResourceLockedError, type Lock } from 'redlock'
import type { RedisHandle } from '@wxlogin/service-kit'
import type { BrokerKeys } from '../keys.js'

export interface HeldLock {
  release: () => Promise<void>
}

/** 'busy': another replica holds it. 'unavailable': no quorum of lock servers answered. */
export type AcquireResult = HeldLock | 'busy' | 'unavailable'

export interface RefreshLock {
  /** `resource` names what is refreshed ('' for the access_token, 'ticket:jsapi', ...). */
  tryAcquire: (appid: string, resource?: string) => Promise<AcquireResult>
}

/** One process, no Redis: the in-process single flight is the whole lock. */
export class LocalLock implements RefreshLock {
  async tryAcquire (): Promise<AcquireResult> {
    return { release: async () => {} }
  }
}

type Args = Array<string | number>

/**
 * Why redlock 5.0.0-beta.2 stays: it is still the newest release (npm's `latest` is 4.2.0, of
 * 2020, callback-based and without `using`/extension signals); it implements Redlock's quorum
 * and clock-drift rules, which a hand-written lock would have to get right again; and the only
 * glue it needs is the adapter below. A maintained replacement speaking node-redis would let
 * the adapter go.
 *
 * redlock 5 speaks ioredis' calling convention (`evalsha(hash, numkeys, [...keys, ...args])`);
 * this maps it onto node-redis, which the project uses everywhere else.
 */
function redlockAdapter (redis: RedisHandle): object {
  const split = (numKeys: number, args: Args): { keys: string[], arguments: string[] } => ({
    keys: args.slice(0, numKeys).map(String),
    arguments: args.slice(numKeys).map(String)
  })
  return {
    evalsha: async (hash: string, numKeys: number, args: Args) => await redis.cmd.evalSha(hash, split(numKeys, args)),
    eval: async (script: string, numKeys: number, args: Args) => await redis.cmd.eval(script, split(numKeys, args))
  }
}

export class RedlockRefreshLock implements RefreshLock {
  private readonly redlock: Redlock
  private readonly quorum: number

  /**
   * With one server (a Sentinel master, or the Cluster node of the app's slot), a single lock.
   * `ttlMs` is short (3 s by default): a holder that dies delays the next refresh by no more.
   * A live holder extends it while its refresh runs.
   */
  constructor (
    private readonly clients: RedisHandle[],
    private readonly keys: BrokerKeys,
    private readonly ttlMs: number
  ) {
    // No retries inside redlock: a busy lock means "wait for the holder's token", which the caller does.
    this.redlock = new Redlock(clients.map(redlockAdapter) as never[], { retryCount: 0, driftFactor: 0.01 })
    // redlock reports every vote against as an 'error' event; without a listener that would throw.
    this.redlock.on('error', () => {})
    this.quorum = Math.floor(clients.length / 2) + 1
  }

  async tryAcquire (appid: string, resource = ''): Promise<AcquireResult> {
    // Skip the round trip when a quorum is plainly unreachable.
    if (this.clients.filter(c => c.ok()).length < this.quorum) return 'unavailable'
    let lock: Lock
    try {
      // The app's hash tag: in a Cluster the lock lives in the app's own slot.
      lock = await this.redlock.acquire([this.keys.lock(appid, resource)], this.ttlMs)
    } catch (err) {
      if (!(err instanceof ExecutionError)) return 'unavailable'
      const stats = await Promise.all(err.attempts)
      const against = stats.flatMap(s => [...s.votesAgainst.values()])
      return against.some(e => e instanceof ResourceLockedError) ? 'busy' : 'unavailable'
    }
    return this.keepAlive(lock)
  }

  /**
   * Extends the lock every third of its lifetime until released. An extension that fails
   * (quorum lost) is not fatal: the lock then expires, another replica may refresh as well,
   * and the store's sequence numbers keep the newer token.
   */
  private keepAlive (acquired: Lock): HeldLock {
    let lock = acquired
    let extending: Promise<void> = Promise.resolve()
    const timer = setInterval(
      () => {
        extending = lock.extend(this.ttlMs).then(
          next => {
            lock = next
          },
          () => {}
        )
      },
      Math.max(100, Math.floor(this.ttlMs / 3))
    )
    timer.unref()
    return {
      release: async () => {
        clearInterval(timer)
        await extending
        try {
          await lock.release()
        } catch {
          /* it expires by itself */
        }
      }
    }
  }
}
