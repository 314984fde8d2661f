import http from 'node:http'
import https from 'node:https'
import gotDefault, { type Got, type RequestFunction } from 'got'

/**
 * got hands Node's HTTP client an options object of some fifty keys, most of them undefined
 * (every TLS setting, on a plain HTTP call too), and Node's agent copies it on every request.
 * Profiled, that copying was a large share of got's cost per call; this passes the same request
 * with only the keys that are set. Node treats a missing key and an undefined one alike.
 */
export const leanRequest: RequestFunction = (url, options) => {
  const set: Record<string, unknown> = {}
  for (const key in options) {
    const value = (options as Record<string, unknown>)[key]
    if (value !== undefined) set[key] = value
  }
  return (url.protocol === 'https:' ? https : http).request(url, set)
}

/**
 * got for the broker's gateway, which streams WeChat's answers through (the JSON calls go on
 * upstream-http): it never retries on its own (the gateway decides) and sends lean requests.
 * Connections are kept alive by Node's global agent.
 */
export function createUpstreamGot (): Got {
  return gotDefault.extend({ retry: { limit: 0 }, request: leanRequest })
}
