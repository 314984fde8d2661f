import { createHash } from 'node:crypto'
import { withTimeout } from '../timeout.js'

interface ScriptArgs {
  keys: string[]
  arguments: string[]
}

/** The commands this project sends, the same in every mode (keys route them in a Cluster). */
export interface RedisCommands {
  get: (key: string) => Promise<string | null>
  set: (
    key: string,
    value: string,
    opts?: { EX?: number, PX?: number, NX?: true, XX?: true, KEEPTTL?: true }
  ) => Promise<string | null>
  /** Several keys only where they share a slot (a hash tag) in a Cluster. */
  del: (key: string | string[]) => Promise<number>
  exists: (key: string) => Promise<number>
  hSet: (key: string, fields: Record<string, string>) => Promise<number>
  hGet: (key: string, field: string) => Promise<string | null | undefined>
  expire: (key: string, seconds: number) => Promise<number>
  pExpire: (key: string, ms: number) => Promise<number>
  pTTL: (key: string) => Promise<number>
  sAdd: (key: string, member: string) => Promise<number>
  sMembers: (key: string) => Promise<string[]>
  zRange: (key: string, start: number, stop: number) => Promise<string[]>
  zRem: (key: string, member: string) => Promise<number>
  /** XADD with MAXLEN ~ `threshold`: a capped stream. */
  xAdd: (
    key: string,
    id: '*',
    message: Record<string, string>,
    opts: { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: number } }
  ) => Promise<string>
  eval: (script: string, opts: ScriptArgs) => Promise<unknown>
  evalSha: (sha: string, opts: ScriptArgs) => Promise<unknown>
}

/** Raised when Redis took longer than the command timeout to answer. */
export class RedisTimeoutError extends Error {
  readonly code = 'REDIS_TIMEOUT'
  constructor (ms: number) {
    super(`Redis did not answer within ${ms} ms`)
    this.name = 'RedisTimeoutError'
  }
}

/** Raised when fewer replicas than REDIS_WAIT_REPLICAS acknowledged a write in time. */
export class RedisReplicationError extends Error {
  readonly code = 'REDIS_NOT_REPLICATED'
  constructor (wanted: number, got: number) {
    super(`a write reached ${got} of the ${wanted} replicas required`)
    this.name = 'RedisReplicationError'
  }
}

/** Calls that manage the connection itself; they have their own time limits or none. */
const UNBOUNDED = new Set<PropertyKey>([
  'connect',
  'quit',
  'close',
  'disconnect',
  'destroy',
  'duplicate',
  'subscribe',
  'unsubscribe',
  'pSubscribe',
  'pUnsubscribe',
  'sSubscribe',
  'sUnsubscribe',
  'on',
  'once',
  'off'
])

type Target = Record<PropertyKey, (...a: unknown[]) => unknown>

/** Script bodies' SHA-1 digests, Redis' names for them in its script cache (not a security use). */
const digests = new Map<string, string>()

/**
 * EVAL as EVALSHA: the script's digest rather than its body on every call (a login sends six
 * scripts of up to 2 KB), and the body once, where the server has not cached it (NOSCRIPT: a
 * restarted server, a promoted replica, another Cluster node). A script never runs twice:
 * NOSCRIPT means it did not run.
 */
async function evalCached (target: Target, script: string, opts: ScriptArgs, onResent: () => void): Promise<unknown> {
  let sha = digests.get(script)
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex')
    digests.set(script, sha)
  }
  try {
    return await (target.evalSha as (sha: string, opts: ScriptArgs) => Promise<unknown>).call(target, sha, opts)
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    onResent()
    return await (target.eval as (script: string, opts: ScriptArgs) => Promise<unknown>).call(target, script, opts)
  }
}

/**
 * Every call that returns a promise fails after `ms`; a late reply still arrives in order and
 * is dropped. Calls go to whatever `current()` returns at the time, so a client can be replaced.
 * `eval` sends the script's digest (see evalCached); `onScriptResent` hears of each script that
 * went out whole after a NOSCRIPT: a round trip after its EVALSHA, so after a WAIT sent with it.
 */
export function bounded (current: () => object, ms: number, onScriptResent: () => void = () => {}): object {
  const wrapped = new Map<PropertyKey, unknown>()
  return new Proxy(
    {},
    {
      get (_obj, prop) {
        let fn = wrapped.get(prop)
        if (fn === undefined) {
          fn = (...args: unknown[]) => {
            // Called on the client itself, never on a proxy: node-redis uses private fields.
            const target = current() as Target
            const r = prop === 'eval'
              ? evalCached(target, args[0] as string, args[1] as ScriptArgs, onScriptResent)
              : (target[prop] as (...a: unknown[]) => unknown).apply(target, args)
            return r instanceof Promise && !UNBOUNDED.has(prop)
              ? withTimeout(r, ms, () => new RedisTimeoutError(ms))
              : r
          }
          wrapped.set(prop, fn)
        }
        return fn
      }
    }
  )
}
