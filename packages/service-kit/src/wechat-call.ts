import { Counter, Histogram, type Registry } from 'prom-client'
import { LATENCY_BUCKETS } from './metrics.js'
import { inSpan, SpanKind } from './tracing/spans.js'
import { UpstreamError, type Upstream } from './upstream-http.js'

export type WechatApi =
  | 'token'
  | 'stable_token'
  | 'jscode2session'
  | 'getuserphonenumber'
  | 'getticket'
  | 'quota_get'
  | 'rid_get'
  | 'clear_quota'
  | 'getcallbackip'
  | 'charge_usage_get'
  | 'getuserriskrank'

export interface WechatApiMetrics {
  requests: Counter<'api' | 'result'>
  duration: Histogram<'api'>
}

export function createWechatApiMetrics (registry: Registry): WechatApiMetrics {
  return {
    requests: new Counter({
      name: 'wechat_api_requests_total',
      help: 'Calls to WeChat server APIs by api and result (ok, the errcode, timeout, network_error, http_<status>).',
      labelNames: ['api', 'result'] as const,
      registers: [registry]
    }),
    duration: new Histogram({
      name: 'wechat_api_request_duration_seconds',
      help: 'Duration of calls to WeChat server APIs.',
      labelNames: ['api'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry]
    })
  }
}

/** The outcome of one call. Never an exception, so no caller passes one on with a URL or a secret in it. */
export type WechatOutcome =
  | { kind: 'ok', body: Record<string, unknown> }
  | { kind: 'errcode', errcode: number, errmsg: string }
  | { kind: 'http', status: number }
  | { kind: 'timeout' }
  | { kind: 'network', code: string, sent: boolean }

export interface WechatRequest {
  api: WechatApi
  method: 'GET' | 'POST'
  /** Base URL plus path; secrets go in searchParams or json, never here, so nothing logs them by accident. */
  url: string
  searchParams?: Record<string, string>
  json?: Record<string, unknown>
  timeoutMs: number
}

/** Errors where the request cannot have reached WeChat: safe to retry even for single-use codes. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * One call to WeChat: timed, counted by api and result, and traced as a client span named by the
 * api (`wechat jscode2session`) with WeChat's errcode as an attribute (the http span under it
 * carries the scrubbed URL). Never throws: the outcome says what happened.
 */
export async function callWechat (
  upstream: Upstream,
  metrics: WechatApiMetrics,
  req: WechatRequest
): Promise<WechatOutcome> {
  return await inSpan(
    `wechat ${req.api}`,
    { 'wechat.api': req.api },
    async span => {
      const stop = metrics.duration.startTimer({ api: req.api })
      const outcome = await attempt(upstream, req)
      stop()
      const result = resultLabel(outcome)
      metrics.requests.inc({ api: req.api, result })
      span.setAttribute('wechat.result', result)
      if (outcome.kind === 'errcode') span.setAttribute('wechat.errcode', outcome.errcode)
      if (outcome.kind === 'ok') span.setAttribute('wechat.errcode', 0)
      return outcome
    },
    SpanKind.CLIENT
  )
}

async function attempt (upstream: Upstream, req: WechatRequest): Promise<WechatOutcome> {
  let status: number
  let text: string
  try {
    // No redirect is followed: WeChat's APIs answer where they are asked.
    const res = await upstream(req)
    status = res.statusCode
    text = res.body
  } catch (err) {
    if (err instanceof UpstreamError && err.timeout) return { kind: 'timeout' }
    const code = err instanceof UpstreamError ? err.code : 'ERR_NETWORK'
    return { kind: 'network', code, sent: !NOT_SENT.has(code) }
  }
  if (status >= 300) return { kind: 'http', status }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return { kind: 'http', status: 502 }
  }
  if (typeof body !== 'object' || body === null) return { kind: 'http', status: 502 }
  const b = body as Record<string, unknown>
  // A success may omit errcode or carry errcode 0.
  if (typeof b.errcode === 'number' && b.errcode !== 0) {
    return { kind: 'errcode', errcode: b.errcode, errmsg: typeof b.errmsg === 'string' ? b.errmsg.slice(0, 200) : '' }
  }
  return { kind: 'ok', body: b }
}

function resultLabel (o: WechatOutcome): string {
  switch (o.kind) {
    case 'ok':
      return 'ok'
    case 'errcode':
      return String(o.errcode)
    case 'http':
      return `http_${o.status}`
    case 'timeout':
      return 'timeout'
    case 'network':
      return 'network_error'
  }
}
