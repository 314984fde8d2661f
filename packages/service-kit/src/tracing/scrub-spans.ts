import type { Context } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base'

/** Every value of a query string: `?code=abc&appid=wx1` -> `?code=_&appid=_`. */
const QUERY_VALUE = /([?&][^=&#\s]{1,64}=)[^&#\s]*/g
/** Secrets and personal data named in text (an error's message quoting a URL or a body). */
const NAMES = 'access_token|secret|js_code|code|session_key|phoneNumber|purePhoneNumber|openid|unionid|token'
const NAMED = new RegExp(`((?:${NAMES})["']?\\s*[:=]\\s*["']?)[^"'&\\s,}]+`, 'gi')
/** A mainland mobile number standing alone. */
const MOBILE = /(?<!\d)(\+?86)?1[3-9]\d{9}(?!\d)/g

/** One attribute value with every query value, named secret and phone number replaced. */
export function scrubValue (value: string): string {
  return value.replace(QUERY_VALUE, '$1_').replace(NAMED, '$1_').replace(MOBILE, '[phone]')
}

type Attributes = Record<string, unknown>

function scrubAttributes (attributes: Attributes): void {
  for (const [key, value] of Object.entries(attributes)) {
    if (typeof value === 'string') attributes[key] = scrubValue(value)
    else if (Array.isArray(value)) {
      attributes[key] = value.map(v => (typeof v === 'string' ? scrubValue(v) : v))
    }
  }
}

/**
 * The last step before a span leaves the process: instrumentations record URLs whole (fastify's
 * `url.path`, http's `url.full` with `access_token=`, `secret=` or `js_code=` in the query), and
 * an exception event quotes its error's message. Placed ahead of the exporting processor, this
 * rewrites the ended span's attributes, its events' attributes and its status message in place,
 * so what is exported carries no token, code, secret, openid or phone number.
 */
export class ScrubbingSpanProcessor implements SpanProcessor {
  onStart (_span: Span, _context: Context): void {}

  onEnd (span: ReadableSpan): void {
    scrubAttributes(span.attributes as Attributes)
    for (const event of span.events) {
      if (event.attributes !== undefined) scrubAttributes(event.attributes as Attributes)
    }
    const status = span.status as { message?: string }
    if (typeof status.message === 'string') status.message = scrubValue(status.message)
  }

  async forceFlush (): Promise<void> {}

  async shutdown (): Promise<void> {}
}
