/**
 * WeChat's rid/get hands back the request and response behind an error: they may hold an
 * access_token, a secret, a code, a ticket, a refresh token or a user's phone number, under
 * names no list could foresee. So what a caller sees is an allow-list: the fields WeChat
 * documents as describing a call (errcode, appid, openid, ...) keep their values; every other
 * value is replaced by ***, and a body that is not JSON or a query string is replaced whole.
 */
const KEEP = new Set([
  // the rid record itself
  'invoke_time',
  'cost_in_ms',
  'client_ip',
  // what identifies a call and its outcome
  'errcode',
  'errmsg',
  'rid',
  'appid',
  'openid',
  'grant_type',
  'force_refresh',
  'type',
  'cgi_path',
  'lang',
  'env_version',
  // what a token or quota answer says of itself
  'expires_in',
  'daily_limit',
  'used',
  'remain'
])
/** Mainland mobile numbers wherever they are left (in an errmsg, say): the last line of defence. */
const MOBILE = /(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)/g
const MASK = '***'

function scrubValue (value: unknown, keep: boolean): unknown {
  if (Array.isArray(value)) return value.map(v => scrubValue(v, keep))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v, KEEP.has(k))]))
  }
  if (value === null || typeof value === 'boolean') return value
  return keep ? (typeof value === 'string' ? value.replace(MOBILE, MASK) : value) : MASK
}

/** A parameter's name decoded; a malformed percent-encoding (WeChat records what it was sent) is no name we keep. */
function decodedName (name: string): string | null {
  try {
    return decodeURIComponent(name)
  } catch {
    return null
  }
}

function scrubQuery (query: string): string {
  return query
    .split('&')
    .map(pair => {
      const eq = pair.indexOf('=')
      if (eq < 0) return MASK
      const name = pair.slice(0, eq)
      const decoded = decodedName(name)
      if (decoded === null) return `${MASK}=${MASK}`
      return KEEP.has(decoded) ? `${name}=${pair.slice(eq + 1).replace(MOBILE, MASK)}` : `${name}=${MASK}`
    })
    .join('&')
}

/** A request or response body as rid/get reports it: JSON, a query string, or anything else. */
export function scrubBody (text: string): string {
  try {
    return JSON.stringify(scrubValue(JSON.parse(text), false))
  } catch {
    return /^[\w.%-]+=[^&]*(&[\w.%-]+=[^&]*)*$/.test(text) ? scrubQuery(text) : MASK
  }
}

/** The URL of the call: its path as it is, its query parameters through the allow-list. */
export function scrubUrl (url: string): string {
  const q = url.indexOf('?')
  if (q >= 0) return `${url.slice(0, q).replace(MOBILE, MASK)}?${scrubQuery(url.slice(q + 1))}`
  return url.includes('=') && !url.includes('/') ? scrubQuery(url) : url.replace(MOBILE, MASK)
}

/** rid/get's `request` record, as a caller of the broker may see it. */
export function scrubRidRecord (request: unknown): Record<string, unknown> {
  const r = (typeof request === 'object' && request !== null ? request : {}) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(r)) {
    if (k === 'request_url' && typeof v === 'string') out[k] = scrubUrl(v)
    else if ((k === 'request_body' || k === 'response_body') && typeof v === 'string') out[k] = scrubBody(v)
    else out[k] = scrubValue(v, KEEP.has(k))
  }
  return out
}
