import http from 'node:http'
import https from 'node:https'

/**
 * One call upstream (WeChat, the broker) whose answer is a small JSON text. Node's own HTTP
 * client: got cost these calls a third of the broker's CPU per login (its per-request option
 * objects, its streams and promise wrappers; docs/benchmarks.md), and nothing here needs what
 * got adds (retries are the callers' own, no redirects are followed, nothing is streamed).
 * Streaming calls (the gateway) stay on got.
 */
export interface UpstreamRequest {
  method: 'GET' | 'POST'
  /** Base URL and path. Secrets go in searchParams or headers, never here. */
  url: string
  searchParams?: Record<string, string>
  headers?: Record<string, string>
  /** Sent as the JSON body. */
  json?: unknown
  /** For the whole call: connecting, sending, and reading the answer to its end. */
  timeoutMs: number
}

export interface UpstreamResponse {
  statusCode: number
  body: string
}

/** Agents to send through (an egress proxy's); Node's global agents, which keep connections alive, otherwise. */
export interface UpstreamAgents {
  http?: http.Agent
  https?: https.Agent
}

export type Upstream = (req: UpstreamRequest) => Promise<UpstreamResponse>

/** No answer of WeChat's or the broker's that these calls read comes near this. */
export const MAX_ANSWER_BYTES = 4 * 2 ** 20

/**
 * Why a call failed: `code` is Node's (ECONNREFUSED, ECONNRESET...), ETIMEDOUT for the timeout,
 * ERR_ANSWER_TOO_LARGE past the bound. The message names no URL, header or body: the query may
 * hold an access_token and the headers a client token.
 */
export class UpstreamError extends Error {
  constructor (
    readonly code: string,
    readonly timeout = false
  ) {
    super(timeout ? 'upstream call timed out' : `upstream call failed: ${code}`)
    this.name = 'UpstreamError'
  }
}

export function createUpstream (agents: UpstreamAgents = {}, maxAnswerBytes = MAX_ANSWER_BYTES): Upstream {
  return async req => await send(req, agents, maxAnswerBytes)
}

async function send (req: UpstreamRequest, agents: UpstreamAgents, maxBytes: number): Promise<UpstreamResponse> {
  const url = new URL(req.url)
  for (const [name, value] of Object.entries(req.searchParams ?? {})) url.searchParams.set(name, value)
  const secure = url.protocol === 'https:'
  if (!secure && url.protocol !== 'http:') throw new UpstreamError('ERR_INVALID_PROTOCOL')
  const body = req.json === undefined ? undefined : JSON.stringify(req.json)
  const headers: Record<string, string | number> = { accept: 'application/json', ...req.headers }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = Buffer.byteLength(body)
  }
  const agent = secure ? agents.https : agents.http
  return await new Promise((resolve, reject) => {
    let settled = false
    const settle = (error: UpstreamError | undefined, answer?: UpstreamResponse): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error === undefined) resolve(answer as UpstreamResponse)
      else {
        reject(error)
        request.destroy()
      }
    }
    const options = { method: req.method, headers, ...(agent !== undefined && { agent }) }
    // Looked up at each call, not imported by name: tracing's instrumentation replaces it.
    const request = (secure ? https : http).request(url, options, res => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBytes) settle(new UpstreamError('ERR_ANSWER_TOO_LARGE'))
        else chunks.push(chunk)
      })
      res.on('end', () => {
        settle(undefined, { statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks, size).toString('utf8') })
      })
      // Cut off before its end: the answer is not whole.
      res.on('close', () => {
        if (!res.complete) settle(new UpstreamError('ECONNRESET'))
      })
      res.on('error', () => settle(new UpstreamError('ECONNRESET')))
    })
    const timer = setTimeout(() => settle(new UpstreamError('ETIMEDOUT', true)), req.timeoutMs)
    request.on('error', (err: NodeJS.ErrnoException) => {
      settle(new UpstreamError(typeof err.code === 'string' ? err.code : 'ERR_NETWORK'))
    })
    request.end(body)
  })
}
