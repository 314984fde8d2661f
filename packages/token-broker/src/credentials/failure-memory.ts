import { ServiceError } from '@wxlogin/service-kit'
import { plausibleFailure, type TokenStore } from '../store/token-store.js'

/**
 * A failed refresh is remembered for a few seconds per app, in this process and through the
 * store by every replica, so that a wrong secret or a failing WeChat is not asked again by each
 * caller on each replica.
 */
export class FailureMemory {
  private readonly failures = new Map<string, { error: ServiceError, until: number }>()

  constructor (
    private readonly store: TokenStore,
    private readonly ttlMs: number
  ) {}

  /** A failure this replica or, through the store, any replica remembers. */
  async recall (appid: string): Promise<ServiceError | null> {
    const local = this.failures.get(appid)
    if (local !== undefined && local.until > Date.now()) return local.error
    if (!this.store.shared || !this.store.available() || this.ttlMs <= 0) return null
    try {
      const f = await this.store.recentFailure(appid)
      return f === null ? null : new ServiceError(f.code, f.message, f.status, { wechatErrcode: f.wechatErrcode })
    } catch {
      return null
    }
  }

  async remember (appid: string, error: ServiceError): Promise<void> {
    if (this.ttlMs <= 0) return
    this.failures.set(appid, { error, until: Date.now() + this.ttlMs })
    const failure = {
      code: error.code,
      message: error.message,
      status: error.statusCode,
      ...(error.wechatErrcode !== undefined ? { wechatErrcode: error.wechatErrcode } : {})
    }
    if (!this.store.shared || !this.store.available() || !plausibleFailure(failure)) return
    try {
      await this.store.rememberFailure(appid, failure, this.ttlMs)
      // Replicas waiting for this refresh learn of it now rather than at their next poll.
      await this.store.publish(appid)
    } catch {
      /* this replica still remembers it */
    }
  }

  /** A refresh succeeded: this replica forgets; the store's memory expires by itself. */
  forget (appid: string): void {
    this.failures.delete(appid)
  }
}
