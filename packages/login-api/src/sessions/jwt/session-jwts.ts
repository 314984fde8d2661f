import { createLocalJWKSet, importJWK, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose'
import type { SigningAlg, SigningKey } from './signing-keys.js'

/** Seconds of clock difference tolerated on `exp`, `iat` and `nbf` (docs/sessions-jwt.md). */
export const CLOCK_SKEW_SECONDS = 10

export interface SessionClaims {
  /** The user_id. */
  sub: string
  appid: string
  openid: string
  /** The refresh family this token was issued with: logout revokes it, the gateway checks it. */
  sid: string
}

export interface SessionJwtOptions {
  keys: SigningKey[]
  issuer: string
  audience: string
  ttlSeconds: number
}

/** A JWT that looks like one (three base64url parts); an opaque session token has no dots. */
export const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Signed sessions (SESSION_FORMAT=jwt): signs with the first key of SESSION_SIGNING_KEYS_FILE,
 * verifies with any of them, by `kid`, on an allow-list of algorithms (never `none`, never an
 * HMAC keyed with a public key), issuer, audience and expiry checked.
 */
export class SessionJwts {
  private constructor (
    private readonly opts: SessionJwtOptions,
    private readonly signer: { kid: string, alg: SigningAlg, key: CryptoKey | Uint8Array },
    private readonly keySet: JWTVerifyGetKey,
    private readonly algorithms: SigningAlg[]
  ) {}

  static async create (opts: SessionJwtOptions): Promise<SessionJwts> {
    const first = opts.keys[0]
    if (first === undefined) throw new Error('no signing key')
    const key = await importJWK({ ...first.privateJwk }, first.alg)
    const keySet = createLocalJWKSet({ keys: opts.keys.map(k => ({ ...k.publicJwk })) })
    const algorithms = [...new Set(opts.keys.map(k => k.alg))]
    return new SessionJwts(opts, { kid: first.kid, alg: first.alg, key }, keySet, algorithms)
  }

  get ttlSeconds (): number {
    return this.opts.ttlSeconds
  }

  /** What /.well-known/jwks.json publishes: the public half of every key, never `d`. */
  jwks (): { keys: Array<SigningKey['publicJwk']> } {
    return { keys: this.opts.keys.map(k => k.publicJwk) }
  }

  async sign (claims: SessionClaims): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    return await new SignJWT({ appid: claims.appid, openid: claims.openid, sid: claims.sid })
      .setProtectedHeader({ alg: this.signer.alg, kid: this.signer.kid, typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + this.opts.ttlSeconds)
      .sign(this.signer.key)
  }

  /** The claims of a valid token, or null for anything else (bad signature, alg, kid, iss, aud, expired). */
  async verify (token: string): Promise<SessionClaims | null> {
    if (!JWT_SHAPE.test(token)) return null
    try {
      const { payload } = await jwtVerify(token, this.keySet, {
        algorithms: this.algorithms,
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['sub', 'exp', 'iat']
      })
      const { sub, appid, openid, sid } = payload
      if (
        typeof sub !== 'string' ||
        typeof appid !== 'string' ||
        typeof openid !== 'string' ||
        typeof sid !== 'string'
      ) {
        return null
      }
      return { sub, appid, openid, sid }
    } catch {
      return null
    }
  }
}
