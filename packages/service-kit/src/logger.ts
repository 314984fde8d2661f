import type { FastifyServerOptions } from 'fastify'

/**
 * Paths pino replaces with [Redacted]. Request logs hold headers; our own log calls never
 * pass tokens, but a future one might, so the usual names are covered everywhere.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.access_token',
  '*.secret',
  '*.appsecret',
  '*.token',
  '*.session_key',
  '*.phoneNumber',
  '*.purePhoneNumber',
  'access_token',
  'secret',
  'token',
  'session_key'
]

export type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>

/** A mainland mobile number standing alone (11 digits, 13x-19x), with or without +86/86. */
const MOBILE = /(?<![\d])(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?![\d])/g

/**
 * The last line of defence: every serialized log line has mainland mobile numbers masked, so a
 * number that reaches a log by a path nobody foresaw (a library's message, a field no redact
 * path names) still does not leak. Timestamps and ids are longer digit runs and do not match.
 */
export function maskMobilesInLine (line: string): string {
  return line.replace(
    MOBILE,
    (_m, cc: string | undefined, head: string, _mid: string, tail: string) => `${cc ?? ''}${head}****${tail}`
  )
}

export function loggerOptions (level: string, name: string, stream?: NodeJS.WritableStream): LoggerOptions {
  return {
    level,
    name,
    ...(stream !== undefined ? { stream } : {}),
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    hooks: { streamWrite: maskMobilesInLine },
    serializers: {
      // The default serializer logs the full URL; a query string might carry a code or token.
      req (req: { method: string, url: string, ip?: string }) {
        return { method: req.method, url: req.url.split('?')[0], remoteAddress: req.ip }
      }
    }
  }
}

/**
 * 13812348000 -> 138****8000, for the rare log line that must name a phone. Shorter numbers
 * (landlines, other countries) keep at most their last half visible.
 */
export function maskPhone (phone: string): string {
  if (phone.length >= 11) return `${phone.slice(0, 3)}****${phone.slice(-4)}`
  const shown = Math.min(4, Math.floor(phone.length / 2))
  return '*'.repeat(phone.length - shown) + phone.slice(phone.length - shown)
}
