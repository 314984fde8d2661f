import { claimOnce, sameOwner, ServiceError, sha256Hex } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { TokenStore } from '../store/token-store.js'
import { codeAnswerName } from '../keys.js'

/** code2session's answer as kept: who the user is in the app (session_key is never kept). */
export interface CodeAnswer {
  openid: string
  unionid: string | null
}

/** An answer as kept: whose it is (a hash of the client and its retry key) and WeChat's answer. */
interface Kept extends CodeAnswer {
  owner: string
}

/** WeChat's codes live 5 minutes: an answer kept longer could only serve a replay. */
const CODE_LIFE_MS = 300_000

/**
 * code2session answers kept at the broker, the process that talks to WeChat: when the login-api
 * that asked dies while WeChat is answering (a rolling deploy, an OOM kill), its retry on another
 * instance still gets the code's answer instead of WeChat's 40163. Kept under the SHA-256 of the
 * code, for the code's life, bound to the client and the caller's retry_key_sha256, so an answer
 * kept here opens no replay the login-api refuses; session_key is never kept. Single flight per
 * code across replicas: a second request waits for the first's answer.
 */
export class CodeAnswers {
  constructor (
    private readonly store: TokenStore,
    private readonly pendingMs: number
  ) {}

  /**
   * `kept`: answered from an earlier exchange. `unkept`: the store could not be reached, so the
   * answer was neither looked up nor kept (WeChat was asked, as without a retry key).
   */
  async exchange (
    appid: string,
    client: string,
    retryKeySha256: string,
    code: string,
    call: () => Promise<CodeAnswer>
  ): Promise<{ answer: CodeAnswer, kept: boolean, unkept?: boolean }> {
    // A shared store that cannot be reached: served as a request without a retry key would be,
    // rather than failing a login for want of a second copy (the login-api keeps its own).
    if (!this.store.available()) return { answer: await call(), kept: false, unkept: true }
    const name = codeAnswerName(code)
    const owner = sha256Hex(`${client}\0${retryKeySha256.toLowerCase()}`)
    let outcome
    try {
      outcome = await claimOnce<Kept>({
        claim: async () => await this.store.claim(appid, name, this.pendingMs),
        // No note yet: the claim's holder is still asking WeChat (or its claim expires soon).
        look: async () => {
          const kept = await this.read(appid, name)
          return kept === null ? { state: 'pending' } : { state: 'settled', record: kept }
        },
        // A retry is answered from the note with no write.
        lookFirst: true,
        waitMs: this.pendingMs,
        busy: () =>
          new ServiceError('exchange_in_progress', 'This code is still being exchanged; retry in a second.', 503, {
            headers: { 'retry-after': '1' }
          })
      })
    } catch (err) {
      if (err instanceof ServiceError) throw err
      // The store went away between the look and the claim: as above.
      return { answer: await call(), kept: false, unkept: true }
    }
    if (outcome.state === 'settled') {
      // Another client, or another attempt: what WeChat itself would say of a used code.
      if (!sameOwner(outcome.record.owner, owner)) throw errors.invalidCode(40163)
      return { answer: { openid: outcome.record.openid, unionid: outcome.record.unionid }, kept: true }
    }
    let answer: CodeAnswer
    try {
      answer = await call()
    } catch (err) {
      await this.store.releaseClaim(appid, name).catch(() => {})
      throw err
    }
    await this.store
      .note(appid, name, JSON.stringify({ owner, openid: answer.openid, unionid: answer.unionid }), CODE_LIFE_MS)
      .catch(() => {})
    return { answer, kept: false }
  }

  private async read (appid: string, name: string): Promise<Kept | null> {
    const raw = await this.store.readNote(appid, name).catch(() => null)
    if (raw === null) return null
    try {
      const v = JSON.parse(raw) as { owner?: unknown, openid?: unknown, unionid?: unknown }
      return typeof v.owner === 'string' && typeof v.openid === 'string'
        ? { owner: v.owner, openid: v.openid, unionid: typeof v.unionid === 'string' ? v.unionid : null }
        : null
    } catch {
      return null
    }
  }
}
