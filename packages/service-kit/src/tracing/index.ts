export { startTracing, type Tracing } from './start-tracing.js'
export { tracingEnabled, tracesProtocol, type TracesProtocol } from './tracing-env.js'
export { inSpan, activeTraceId, SpanKind } from './spans.js'
export { scrubValue } from './scrub-spans.js'
