/**
 * What a log may show of an error from a library: its name, code, message and stack, and the
 * same of its cause, with every URL's query string and every token-like parameter removed. got
 * puts the whole URL (access_token=, secret=, js_code=) into its messages; node-redis may name
 * a host with its password.
 */
export interface ErrorFields {
  name: string
  code?: string
  message: string
  stack?: string
  cause?: ErrorFields
}

const URL_QUERY = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@]*@)?([^\s?#]*)\?[^\s'"]*/gi
const SECRET_PARAMS = /\b(access_token|secret|appsecret|js_code|code|token|password|ticket)=[^&\s'"]*/gi
const BEARER = /\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/gi

export function scrubText (text: string): string {
  return text
    .replace(
      URL_QUERY,
      (_m, scheme: string, _userinfo: string | undefined, rest: string) => `${scheme}${rest}?[query removed]`
    )
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1[credentials removed]@')
    .replace(SECRET_PARAMS, '$1=[removed]')
    .replace(BEARER, '$1 [removed]')
}

export function errorFields (err: unknown, depth = 0): ErrorFields {
  if (!(err instanceof Error)) return { name: typeof err, message: scrubText(String(err)).slice(0, 300) }
  const code = (err as { code?: unknown }).code
  const fields: ErrorFields = { name: err.name, message: scrubText(err.message).slice(0, 500) }
  if (typeof code === 'string' || typeof code === 'number') fields.code = String(code)
  if (err.stack !== undefined) fields.stack = scrubText(err.stack).split('\n').slice(0, 12).join('\n')
  if (err.cause !== undefined && depth < 3) fields.cause = errorFields(err.cause, depth + 1)
  return fields
}
