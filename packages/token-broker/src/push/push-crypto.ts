import { createDecipheriv, createHash } from 'node:crypto'
import { safeEqualHex } from '@wxlogin/service-kit'

/**
 * WeChat's message-push crypto (消息加解密): the signature over the sorted token, timestamp, nonce
 * (and, for an encrypted message, the ciphertext), and AES-256-CBC with the EncodingAESKey (the
 * IV its first 16 bytes), PKCS#7 padded to 32 bytes, around random(16) + length(4, big-endian) +
 * message + appid. Tested against an independent implementation (@wecom/crypto).
 */
export function pushSignature (token: string, timestamp: string, nonce: string, encrypted = ''): string {
  const parts = [token, timestamp, nonce, ...(encrypted === '' ? [] : [encrypted])].sort()
  return createHash('sha1').update(parts.join('')).digest('hex')
}

/** Compared in constant time; anything but 40 hex digits is simply wrong. */
export function signatureMatches (expected: string, given: unknown): boolean {
  return typeof given === 'string' && /^[0-9a-fA-F]{40}$/.test(given) && safeEqualHex(expected, given.toLowerCase())
}

export class PushDecryptError extends Error {
  constructor (why: string) {
    super(`the push does not decrypt: ${why}`)
    this.name = 'PushDecryptError'
  }
}

/** The message inside `encrypted`, checked to name `appid`. */
export function decryptPush (aesKey: Buffer, encrypted: string, appid: string): string {
  let plain: Buffer
  try {
    const decipher = createDecipheriv('aes-256-cbc', aesKey, aesKey.subarray(0, 16))
    decipher.setAutoPadding(false)
    plain = Buffer.concat([decipher.update(encrypted, 'base64'), decipher.final()])
  } catch {
    throw new PushDecryptError('not AES-256-CBC under this key')
  }
  const pad = plain[plain.length - 1] ?? 0
  if (pad < 1 || pad > 32 || plain.length < 20 + pad) throw new PushDecryptError('bad padding')
  const body = plain.subarray(16, plain.length - pad)
  const length = body.readUInt32BE(0)
  if (length > body.length - 4) throw new PushDecryptError('bad length')
  const message = body.subarray(4, 4 + length).toString('utf8')
  const from = body.subarray(4 + length).toString('utf8')
  if (from !== appid) throw new PushDecryptError('it names another app')
  return message
}
