import { ConfigError } from '../env.js'

type Env = Record<string, string | undefined>

/** The OTLP protocols the services export traces with (gRPC would add a second stack of dependencies). */
export type TracesProtocol = 'http/protobuf' | 'http/json'

/**
 * Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the traces-only
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and the SDK is not disabled (`OTEL_SDK_DISABLED=true`),
 * as the OpenTelemetry specification reads these variables. Off, nothing of the SDK is loaded.
 */
export function tracingEnabled (env: Env): boolean {
  const endpoint = (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim()
  if (endpoint === '') return false
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false
  return (env.OTEL_TRACES_EXPORTER ?? 'otlp').trim().toLowerCase() !== 'none'
}

/** `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else http/protobuf. */
export function tracesProtocol (env: Env): TracesProtocol {
  const name = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL !== undefined
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL'
  const value = (env[name] ?? 'http/protobuf').trim()
  if (value === 'http/protobuf' || value === 'http/json') return value
  throw new ConfigError(name, `is "${value.slice(0, 40)}"; the services export traces over http/protobuf or http/json`)
}
