import { readFileSync } from 'node:fs'

/** Thrown for a missing or malformed variable; configOrExit() prints its message alone, without a stack. */
export class ConfigError extends Error {
  readonly code = 'invalid_config'
  constructor (
    readonly variable: string,
    reason: string
  ) {
    super(`Invalid configuration: ${variable} ${reason}`)
    this.name = 'ConfigError'
  }
}

/**
 * Thrown while a service starts when something outside it is not as it needs (a database
 * schema older than the release); startOrExit() prints its message alone, without a stack.
 */
export class StartupError extends Error {
  readonly code = 'startup_failed'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StartupError'
  }
}

/** `start`, or one line on stderr and exit 1 for a StartupError (anything else is thrown on). */
export async function startOrExit<T> (service: string, start: Promise<T>): Promise<T> {
  try {
    return await start
  } catch (err) {
    if (!(err instanceof StartupError)) throw err
    process.stderr.write(`${service}: ${err.message}\n`)
    process.exit(1)
  }
}

export type Env = Record<string, string | undefined>

/** A WeChat appid as this project accepts it (config, routes, client permissions). */
export const APPID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
export const APPID = new RegExp(APPID_PATTERN)

/**
 * The header a caller sets to say how many ms it will wait for the answer, so the service it
 * calls gives up on its own upstream first (broker-client sends it, the broker honours it).
 */
export const DEADLINE_HEADER = 'x-deadline-ms'

/**
 * Reads typed values from an environment. Every accessor names the variable in its
 * error, and never puts the value in a message (it may be a secret).
 */
export class EnvReader {
  constructor (private readonly env: Env) {}

  has (name: string): boolean {
    return this.raw(name) !== undefined || (this.env[`${name}_FILE`] ?? '') !== ''
  }

  private raw (name: string): string | undefined {
    const v = this.env[name]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }

  string (name: string, fallback?: string): string {
    const v = this.raw(name) ?? fallback
    if (v === undefined) throw new ConfigError(name, 'is required')
    return v
  }

  optionalString (name: string): string | undefined {
    return this.raw(name)
  }

  /** A secret, from NAME or from the file NAME_FILE names (Docker and Kubernetes secrets). */
  secret (name: string, required: true): string
  secret (name: string, required?: boolean): string | undefined
  secret (name: string, required = false): string | undefined {
    const direct = this.raw(name)
    const file = this.raw(`${name}_FILE`)
    if (direct !== undefined && file !== undefined) {
      throw new ConfigError(name, `and ${name}_FILE are both set; set one`)
    }
    if (file !== undefined) {
      let content: string
      try {
        content = readFileSync(file, 'utf8')
      } catch (err) {
        throw new ConfigError(
          `${name}_FILE`,
          `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`
        )
      }
      const value = content.trim()
      if (value === '') throw new ConfigError(`${name}_FILE`, 'names an empty file')
      return value
    }
    if (direct === undefined && required) throw new ConfigError(name, `is required (or ${name}_FILE)`)
    return direct
  }

  int (name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const v = this.raw(name)
    if (v === undefined) return fallback
    if (!/^-?\d+$/.test(v)) throw new ConfigError(name, 'must be a whole number')
    const n = Number(v)
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}`)
    return n
  }

  port (name: string, fallback: number): number {
    return this.int(name, fallback, { min: 0, max: 65535 })
  }

  bool (name: string, fallback: boolean): boolean {
    const v = this.raw(name)
    if (v === undefined) return fallback
    if (/^(1|true|yes|on)$/i.test(v)) return true
    if (/^(0|false|no|off)$/i.test(v)) return false
    throw new ConfigError(name, 'must be true or false')
  }

  url (name: string, fallback?: string, protocols = ['http:', 'https:']): string {
    const v = this.raw(name) ?? fallback
    if (v === undefined) throw new ConfigError(name, 'is required')
    return checkUrl(name, v, protocols)
  }

  optionalUrl (name: string, protocols: string[]): string | undefined {
    const v = this.raw(name)
    return v === undefined ? undefined : checkUrl(name, v, protocols)
  }

  /** JSON that may hold secrets: read through secret() so the _FILE form works too. */
  json<T>(name: string, required: true): T
  json<T>(name: string, required?: boolean): T | undefined
  json<T>(name: string, required = false): T | undefined {
    const v = this.secret(name, required)
    if (v === undefined) return undefined
    try {
      return JSON.parse(v) as T
    } catch {
      throw new ConfigError(name, 'is not valid JSON')
    }
  }

  level (name: string, fallback = 'info'): string {
    const v = this.string(name, fallback)
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
    if (!levels.includes(v)) throw new ConfigError(name, `must be one of ${levels.join(', ')}`)
    return v
  }
}

/** `value` as a URL of one of `protocols`, trailing slashes dropped; the error names `name`, never the value. */
export function checkUrl (name: string, value: string, protocols: string[]): string {
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw new ConfigError(name, 'is not a valid URL')
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must be a ${protocols.join(' or ')} URL`)
  }
  return value.replace(/\/+$/, '')
}

/** A comma-separated list of redis:// URLs. */
export function redisUrlList (reader: EnvReader, name: string): string[] | undefined {
  const raw = reader.optionalString(name)
  if (raw === undefined) return undefined
  const urls = raw
    .split(',')
    .map(s => s.trim())
    .filter(Boolean)
  return urls.map(u => checkUrl(name, u, ['redis:', 'rediss:']))
}

/**
 * An upstream base URL. Plain http is refused unless `allowHttpVar` is true: what goes to
 * WeChat carries the appsecret or an access_token (the simulator and tests allow it).
 */
export function upstreamUrl (reader: EnvReader, name: string, fallback: string, allowHttpVar: string): string {
  const url = reader.url(name, fallback)
  if (url.startsWith('http:') && !reader.bool(allowHttpVar, false)) {
    throw new ConfigError(
      name,
      `is plain http; it would carry secrets in clear. Use https, or set ${allowHttpVar}=true for a simulator`
    )
  }
  return url
}

/**
 * For server.ts: the configuration, or one line naming the bad variable on stderr and exit 1
 * (no stack trace: an operator needs the variable, not our call stack).
 */
/**
 * The apps a service serves: a JSON list in `listVar` (its items for the caller to check), or
 * one as WECHAT_APPID (checked here); exactly one of the two.
 */
export function readAppList (
  reader: EnvReader,
  listVar: string,
  several: string
): { list: unknown[] } | { single: string } {
  const list = reader.json<unknown>(listVar)
  const single = reader.optionalString('WECHAT_APPID')
  if (list !== undefined && single !== undefined) {
    throw new ConfigError(listVar, 'and WECHAT_APPID are both set; use one')
  }
  if (list !== undefined) {
    if (!Array.isArray(list) || list.length === 0) throw new ConfigError(listVar, 'must be a non-empty JSON array')
    return { list }
  }
  if (single === undefined) throw new ConfigError('WECHAT_APPID', `is required (or ${listVar} for ${several})`)
  if (!APPID.test(single)) throw new ConfigError('WECHAT_APPID', 'is not a valid appid')
  return { single }
}

export function configOrExit<T> (service: string, load: (env: Env) => T, env: Env): T {
  try {
    return load(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${service}: ${err.message}\n`)
    process.exit(1)
  }
}
