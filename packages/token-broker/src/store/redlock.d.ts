// redlock 5's package.json "exports" has no "types" entry, so NodeNext resolution cannot
// find its bundled declarations; these are the parts this package uses, as declared there.
declare module 'redlock' {
  import { EventEmitter } from 'node:events'

  export class ResourceLockedError extends Error {}
  export interface ExecutionStats {
    readonly membershipSize: number
    readonly quorumSize: number
    readonly votesFor: Set<unknown>
    readonly votesAgainst: Map<unknown, Error>
  }
  export class ExecutionError extends Error {
    readonly attempts: ReadonlyArray<Promise<ExecutionStats>>
  }
  export interface Lock {
    readonly expiration: number
    release: () => Promise<unknown>
    extend: (duration: number) => Promise<Lock>
  }
  export interface Settings {
    readonly driftFactor: number
    readonly retryCount: number
    readonly retryDelay: number
    readonly retryJitter: number
    readonly automaticExtensionThreshold: number
  }
  export default class Redlock extends EventEmitter {
    constructor (clients: Iterable<unknown>, settings?: Partial<Settings>)
    acquire (resources: string[], duration: number, settings?: Partial<Settings>): Promise<Lock>
  }
}
