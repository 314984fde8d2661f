import { sha256Hex } from '@wxlogin/service-kit'

/** The names of one kind of credential's keys inside an app's hash tag. */
export interface CredentialKeys {
  record: string
  seq: string
  channel: string
  failure: string
}

/**
 * Every Redis key and channel of the token-broker, built here and nowhere else. `prefix` is
 * REDIS_KEY_PREFIX. Each app's keys share its hash tag ({appid}): one Cluster slot, so a
 * refresh's scripts touch one slot.
 */
export class BrokerKeys {
  constructor (readonly prefix: string) {}

  private app (appid: string, what: string): string {
    return `${this.prefix}{${appid}}:${what}`
  }

  /**
   * One kind of credential of an app: the access_token's are the historical `token`, `seq`,
   * `token-updated` (a channel), `failure`; a ticket's carry its name (`ticket:jsapi`, ...).
   */
  credential (appid: string, kind: string): CredentialKeys {
    const names =
      kind === 'token'
        ? { record: 'token', seq: 'seq', channel: 'token-updated', failure: 'failure' }
        : { record: kind, seq: `${kind}:seq`, channel: `${kind}:updated`, failure: `${kind}:failure` }
    return {
      record: this.app(appid, names.record),
      seq: this.app(appid, names.seq),
      channel: this.app(appid, names.channel),
      failure: this.app(appid, names.failure)
    }
  }

  /** The refresh lock of an app (`resource`: a ticket's, else the token's). */
  lock (appid: string, resource = ''): string {
    return this.app(appid, `lock${resource === '' ? '' : `:${resource}`}`)
  }

  /** A claim: the first caller within its life gets it (a code's exchange, a token check). */
  claim (appid: string, name: string): string {
    return this.app(appid, `claim:${name}`)
  }

  /** A budget counted per app (invalidations a day). */
  budget (appid: string, name: string): string {
    return this.app(appid, `budget:${name}`)
  }

  /** WeChat's pushes, one stream for all apps (a consumer group per client); one slot with their marks. */
  get wechatEvents (): string {
    return `${this.prefix}{wechat-events}:stream`
  }

  /** A push already stored: WeChat's resends of it are stored once. Named by a hash. */
  wechatEventSeen (appid: string, dedupeId: string): string {
    return `${this.prefix}{wechat-events}:seen:${sha256Hex(`${appid}\0${dedupeId}`)}`
  }

  /** A short note every replica reads (a kept code2session answer, a token's verdict). */
  note (appid: string, name: string): string {
    return this.app(appid, `note:${name}`)
  }
}

// The names inside an app's claims and notes: hashes, never a code or a token.

/** A code2session answer kept for a code. */
export const codeAnswerName = (code: string): string => `c2s:${sha256Hex(code)}`
/** A phone number kept (sealed) for a phone code. */
export const phoneAnswerName = (code: string): string => `phone:${sha256Hex(code)}`
/** A verdict on whether WeChat still takes a token. */
export const verdictName = (token: string): string => `verdict:${sha256Hex(token).slice(0, 32)}`
/** The claim that bounds token checks per app. */
export const VERIFY_CLAIM = 'verify'
