import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { claimOnce, sameOwner, ServiceError, sha256Hex } from '@wxlogin/service-kit'
import type { TokenStore } from '../store/token-store.js'

/** code2session's answer as kept: who the user is in the app (session_key is never kept). */
export interface CodeAnswer {
  openid: string
  unionid: string | null
}

/** WeChat's codes live 5 minutes: an answer kept longer could only serve a replay. */
const CODE_LIFE_MS = 300_000
/**
 * How long an answer WeChat gave waits in memory for a store that stopped answering (a failover,
 * a frozen master) before it is given up: the code is spent, and a phone number billed.
 */
export const KEEP_PATIENCE_MS = 15_000
const KEEP_RETRY_MS = 250

export interface KeptAnswersOptions<T> {
  store: TokenStore
  /** How long a claim outlives its WeChat call with retries; also how long a second caller waits. */
  pendingMs: number
  /** The note's name for a code: a hash, never the code. */
  name: (code: string) => string
  /**
   * Sealed (phone numbers): AES-256-GCM under a key derived from the code and the caller's
   * retry_key_sha256, neither of which is stored, so a dump of the store opens nothing and there
   * is no key to hold or rotate. Otherwise kept as JSON (an openid and unionid).
   */
  sealed: boolean
  /** The answer, from what was kept (null: not an answer of this kind). */
  parse: (v: unknown) => T | null
  /** What a caller that is not the answer's owner meets: WeChat's own word for a used code. */
  used: () => ServiceError
  /** How long a note is tried again while the store is away (KEEP_PATIENCE_MS; tests set it short). */
  keepPatienceMs?: number
}

/** Who asks: the client, its retry key's SHA-256, and the openid the answer is bound to, if any. */
export interface Asker {
  appid: string
  client: string
  retryKeySha256: string
  openid?: string | undefined
}

/**
 * WeChat answers kept at the broker, the process that talks to WeChat: when the login-api that
 * asked dies while WeChat is answering (a rolling deploy, an OOM kill), its retry on another
 * instance still gets the code's answer instead of WeChat's 40163 (and a phone exchange is not
 * billed twice, nor lost). Kept under the SHA-256 of the code, for the code's life, bound to the
 * client, the caller's retry_key_sha256 and (phone numbers) the openid, so an answer kept here
 * opens no replay the login-api refuses. Single flight per code across replicas: a second request
 * waits for the first's answer.
 */
export class KeptAnswers<T> {
  /**
   * Answers WeChat gave whose note is not written yet (the store froze or failed over meanwhile),
   * by app and note name: a retry reaching this process gets them, rather than spending the code
   * again (a phone number billed and lost). Dropped once written, or at the code's end of life.
   */
  private readonly unwritten = new Map<string, { owner: string, answer: T, until: number }>()

  constructor (private readonly opts: KeptAnswersOptions<T>) {}

  /**
   * `kept`: answered from an earlier exchange. `unkept`: the store could not be reached, so the
   * answer was neither looked up nor kept (WeChat was asked, as without a retry key).
   */
  async exchange (
    asker: Asker,
    code: string,
    call: () => Promise<T>,
    /** When the caller stops waiting (Unix ms): a second caller waits for the first no longer. */
    callerDeadline = Infinity
  ): Promise<{ answer: T, kept: boolean, unkept?: boolean }> {
    const { store, pendingMs } = this.opts
    const { appid } = asker
    const name = this.opts.name(code)
    const retryKey = asker.retryKeySha256.toLowerCase()
    const owner = sha256Hex(`${asker.client}\0${retryKey}${asker.openid === undefined ? '' : `\0${asker.openid}`}`)
    const local = this.unwritten.get(`${appid}\0${name}`)
    if (local !== undefined && local.until > Date.now()) {
      if (!sameOwner(local.owner, owner)) throw this.opts.used()
      return { answer: local.answer, kept: true }
    }
    // A shared store that cannot be reached: served as a request without a retry key would be,
    // rather than failing a login for want of a second copy (the login-api keeps its own).
    if (!store.available()) return { answer: await call(), kept: false, unkept: true }
    const seal = this.opts.sealed ? sealKey(code, retryKey, asker.client) : undefined
    let outcome
    try {
      outcome = await claimOnce<{ owner: string, answer: T | null }>({
        claim: async () => await store.claim(appid, name, pendingMs),
        // No note yet: the claim's holder is still asking WeChat (or its claim expires soon).
        look: async () => {
          const kept = await this.read(appid, name, seal)
          return kept === null ? { state: 'pending' } : { state: 'settled', record: kept }
        },
        // A retry is answered from the note with no write.
        lookFirst: true,
        waitMs: Math.max(0, Math.min(pendingMs, callerDeadline - Date.now() - 100)),
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
      // Another client, another attempt or another openid (a sealed answer does not even open).
      const { record } = outcome
      if (!sameOwner(record.owner, owner) || record.answer === null) throw this.opts.used()
      return { answer: record.answer, kept: true }
    }
    let answer: T
    try {
      answer = await call()
    } catch (err) {
      await store.releaseClaim(appid, name).catch(() => {})
      throw err
    }
    const body = seal === undefined ? answer : { sealed: sealed(seal, answer) }
    const key = `${appid}\0${name}`
    this.remember(key, { owner, answer, until: Date.now() + CODE_LIFE_MS })
    const noted = await this.keep(appid, name, JSON.stringify({ owner, ...body }))
    if (noted) this.unwritten.delete(key)
    return noted ? { answer, kept: false } : { answer, kept: false, unkept: true }
  }

  /** Held until written; the expired dropped first, so the map stays as small as the outage. */
  private remember (key: string, entry: { owner: string, answer: T, until: number }): void {
    if (this.unwritten.size >= 1000) {
      const now = Date.now()
      for (const [k, v] of this.unwritten) if (v.until <= now) this.unwritten.delete(k)
    }
    this.unwritten.set(key, entry)
  }

  /** The note written, tried again while the store is away, for KEEP_PATIENCE_MS; whether it was. */
  private async keep (appid: string, name: string, value: string): Promise<boolean> {
    const deadline = Date.now() + (this.opts.keepPatienceMs ?? KEEP_PATIENCE_MS)
    for (;;) {
      try {
        await this.opts.store.note(appid, name, value, CODE_LIFE_MS)
        return true
      } catch {
        if (Date.now() + KEEP_RETRY_MS >= deadline) return false
        await new Promise(resolve => setTimeout(resolve, KEEP_RETRY_MS))
      }
    }
  }

  private async read (
    appid: string,
    name: string,
    seal: Buffer | undefined
  ): Promise<{ owner: string, answer: T | null } | null> {
    const raw = await this.opts.store.readNote(appid, name).catch(() => null)
    if (raw === null) return null
    try {
      const { owner, ...rest } = JSON.parse(raw) as { owner?: unknown, sealed?: unknown }
      if (typeof owner !== 'string') return null
      if (seal === undefined) return { owner, answer: this.opts.parse(rest) }
      return { owner, answer: typeof rest.sealed === 'string' ? this.opts.parse(opened(seal, rest.sealed)) : null }
    } catch {
      // Not ours, or sealed for another asker (the tag does not verify): nothing this caller may have.
      return { owner: '', answer: null }
    }
  }
}

const IV_BYTES = 12
const TAG_BYTES = 16

function sealKey (code: string, retryKeySha256: string, client: string): Buffer {
  return Buffer.from(hkdfSync('sha256', `${code}\0${retryKeySha256}`, client, 'wxlogin broker kept answer', 32))
}

function sealed (key: Buffer, value: unknown): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')
}

function opened (key: Buffer, text: string): unknown {
  const all = Buffer.from(text, 'base64')
  const decipher = createDecipheriv('aes-256-gcm', key, all.subarray(0, IV_BYTES))
  decipher.setAuthTag(all.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
  const body = Buffer.concat([decipher.update(all.subarray(IV_BYTES + TAG_BYTES)), decipher.final()])
  return JSON.parse(body.toString('utf8')) as unknown
}
