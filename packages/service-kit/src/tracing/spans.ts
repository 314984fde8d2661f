import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api'

/** The tracer of the services' own spans: a no-op, costing next to nothing, while tracing is off. */
const tracer = trace.getTracer('wxlogin')

/**
 * Runs `fn` in a span of its own, a child of the active one: the steps of a login (claim,
 * code2session, phone exchange, commit, session) and the broker's calls to WeChat. Attributes
 * name the step and its outcome, never a code, token, openid or phone number. An error ends the
 * span with its class name as the status; its message is not recorded (it may quote a value).
 */
export async function inSpan<T> (
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL
): Promise<T> {
  return await tracer.startActiveSpan(name, { kind, attributes }, async span => {
    try {
      return await fn(span)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : (err as Error).name })
      throw err
    } finally {
      span.end()
    }
  })
}

/** The trace id of the active span, for a log line; undefined while tracing is off. */
export function activeTraceId (): string | undefined {
  const span = trace.getActiveSpan()
  return span?.isRecording() === true ? span.spanContext().traceId : undefined
}

export { SpanKind }
