import { createPrivateKey, createPublicKey, hkdfSync, sign, verify, type JsonWebKey } from 'node:crypto'
import { ConfigError } from '@wxlogin/service-kit'

/** The algorithms a session may be signed with: what every stock JWT library verifies. */
export type SigningAlg = 'ES256' | 'EdDSA'

/** One key of SESSION_SIGNING_KEYS_FILE: the private JWK signs, the public one is published. */
export interface SigningKey {
  kid: string
  alg: SigningAlg
  privateJwk: JsonWebKey
  publicJwk: JsonWebKey & { kid: string, alg: SigningAlg, use: 'sig' }
}

const VARIABLE = 'SESSION_SIGNING_KEYS_FILE'
const KID = /^[A-Za-z0-9._-]{1,64}$/

function algOf (jwk: Record<string, unknown>, i: number): SigningAlg {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && (jwk.alg === undefined || jwk.alg === 'ES256')) return 'ES256'
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && (jwk.alg === undefined || jwk.alg === 'EdDSA')) return 'EdDSA'
  throw new ConfigError(VARIABLE, `key ${i} is not an ES256 (EC P-256) or EdDSA (OKP Ed25519) key`)
}

/**
 * A JWKS with private keys (`{"keys": [...]}`): the first signs, every one verifies. Each key
 * needs a unique `kid`, since verifiers pick the key by it. Checked here, at start, by loading
 * every key: a broken file stops the process with one line, never on the first login.
 */
export function parseSigningKeys (text: string): SigningKey[] {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new ConfigError(VARIABLE, 'is not JSON (a JWKS: {"keys": [...]}; `pnpm dev-secrets` writes one)')
  }
  const list = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(VARIABLE, 'must be a JWKS with at least one key: {"keys": [...]}')
  }
  const seen = new Set<string>()
  return list.map((raw: unknown, i) => {
    if (raw === null || typeof raw !== 'object') throw new ConfigError(VARIABLE, `key ${i} is not an object`)
    const jwk = raw as Record<string, unknown>
    if (typeof jwk.kid !== 'string' || !KID.test(jwk.kid)) {
      throw new ConfigError(VARIABLE, `key ${i} needs a kid (1-64 of A-Z a-z 0-9 . _ -)`)
    }
    if (seen.has(jwk.kid)) throw new ConfigError(VARIABLE, `has the kid ${jwk.kid} twice`)
    seen.add(jwk.kid)
    const alg = algOf(jwk, i)
    if (typeof jwk.d !== 'string') {
      throw new ConfigError(
        VARIABLE,
        `key ${jwk.kid} has no private part (d): this file signs, the public keys are derived`
      )
    }
    let publicJwk: JsonWebKey
    let matches = false
    try {
      const privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
      const publicKey = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
      publicJwk = publicKey.export({ format: 'jwk' })
      // A private part that does not match the public one would sign tokens nobody can verify.
      const probe = Buffer.from('wxlogin signing key probe')
      const digest = alg === 'ES256' ? 'sha256' : null
      matches = verify(digest, probe, publicKey, sign(digest, probe, privateKey))
    } catch {
      throw new ConfigError(VARIABLE, `key ${jwk.kid} is not a valid ${alg} private key`)
    }
    if (!matches) {
      throw new ConfigError(
        VARIABLE,
        `key ${jwk.kid} is not a valid ${alg} private key (its d does not match its public part)`
      )
    }
    return {
      kid: jwk.kid,
      alg,
      privateJwk: { ...(jwk as JsonWebKey) },
      publicJwk: { ...publicJwk, kid: jwk.kid, alg, use: 'sig' }
    }
  })
}

/**
 * A key for deriving a refresh token's successor (refresh-tokens.ts), from the signing key: every
 * instance with the same file derives the same one, and it is never stored.
 */
export function successorKey (key: SigningKey): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.from(String(key.privateJwk.d), 'base64url'),
      Buffer.alloc(0),
      'wxlogin refresh-token successor',
      32
    )
  )
}
