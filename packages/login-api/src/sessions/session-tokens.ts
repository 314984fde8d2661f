import { randomBytes } from 'node:crypto'
import { sha256Hex } from '@wxlogin/service-kit'

/** 256 random bits; only its SHA-256 is ever stored. */
export function newSessionToken (): { token: string, hash: string } {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: sha256Hex(token) }
}

export function hashSessionToken (token: string): string {
  return sha256Hex(token)
}

export function bearer (header: string | undefined): string | null {
  if (header === undefined) return null
  const m = /^Bearer\s+([A-Za-z0-9_-]{16,128})\s*$/i.exec(header)
  return m?.[1] ?? null
}

/** A bearer JWT (SESSION_FORMAT=jwt), or null: three base64url parts, a bound on its length. */
export function bearerJwt (header: string | undefined): string | null {
  if (header === undefined || header.length > 4096) return null
  const m = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i.exec(header)
  return m?.[1] ?? null
}
