import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { ConfigError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'

/** One key of PII_ENCRYPTION_KEY_FILE: `<key id>:<base64 of 32 random bytes>`. */
export interface PiiKey {
  id: string
  key: Buffer
}

const KEY_LINE = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/]{43}=)$/
const SEALED = /^pii1:([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_-]+)$/

/** The key file's lines: the first encrypts, every one decrypts (rotation: add a line on top). */
export function parsePiiKeys (text: string, name = 'PII_ENCRYPTION_KEY_FILE'): PiiKey[] {
  const lines = text
    .split(/\r?\n/)
    .map(l => l.trim())
    .filter(l => l !== '' && !l.startsWith('#'))
  if (lines.length === 0) throw new ConfigError(name, 'holds no key (one a line: <key id>:<base64 of 32 random bytes>)')
  const keys = lines.map((line, i) => {
    const m = KEY_LINE.exec(line)
    const key = m === null ? undefined : Buffer.from(m[2] as string, 'base64')
    if (m === null || key?.length !== 32) {
      throw new ConfigError(name, `line ${i + 1} is not <key id>:<base64 of 32 random bytes>`)
    }
    return { id: m[1] as string, key }
  })
  if (new Set(keys.map(k => k.id)).size !== keys.length) throw new ConfigError(name, 'names a key id twice')
  return keys
}

/** A fresh key file line, for `pnpm start` and dev-secrets. */
export function newPiiKeyLine (id: string): string {
  return `${id}:${randomBytes(32).toString('base64')}`
}

/**
 * AES-256-GCM for personal data at rest. A sealed value names its key id, so old values stay
 * readable after a rotation; `context` (the record it belongs to) is authenticated, so a value
 * copied into another user's record does not open. Without keys (memory stores only) values
 * stay as they are.
 */
export class PiiCipher {
  private readonly byId: Map<string, Buffer>
  private readonly current: PiiKey | undefined

  constructor (keys: PiiKey[] | undefined) {
    this.current = keys?.[0]
    this.byId = new Map((keys ?? []).map(k => [k.id, k.key]))
  }

  get enabled (): boolean {
    return this.current !== undefined
  }

  seal (value: unknown, context: string): unknown {
    if (this.current === undefined) return value
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv)
    cipher.setAAD(Buffer.from(context))
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
    return `pii1:${this.current.id}:${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`
  }

  /**
   * A sealed value opened, or a value stored before encryption as it is. Throws when it does not
   * open; under a key id no longer held, a 503 whose log detail names the id (never a 500).
   */
  open<T>(stored: unknown, context: string): T {
    if (typeof stored !== 'string' || !stored.startsWith('pii1:')) return stored as T
    const m = SEALED.exec(stored)
    const key = m === null ? undefined : this.byId.get(m[1] as string)
    if (m === null || key === undefined) throw errors.sealedUnreadable(m?.[1] ?? 'malformed')
    const raw = Buffer.from(m[2] as string, 'base64url')
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(context))
    decipher.setAuthTag(raw.subarray(raw.length - 16))
    const text = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8')
    return JSON.parse(text) as T
  }

  /** True when the key file lists this key id. */
  holds (keyId: string): boolean {
    return this.byId.has(keyId)
  }

  /** The key id a sealed value names (null: not sealed). */
  keyIdOf (stored: unknown): string | null {
    return typeof stored === 'string' ? (SEALED.exec(stored)?.[1] ?? null) : null
  }

  /** True when `stored` should be written again: in clear, or sealed with a key that no longer encrypts. */
  stale (stored: unknown): boolean {
    if (this.current === undefined || stored === null || stored === undefined) return false
    return typeof stored !== 'string' || !stored.startsWith(`pii1:${this.current.id}:`)
  }
}
