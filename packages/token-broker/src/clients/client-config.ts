import { ConfigError, sha256Hex, type EnvReader } from '@wxlogin/service-kit'

export interface BrokerClientConfig {
  name: string
  /** A client token in clear (tests, development); configuration from BROKER_CLIENTS keeps only hashes. */
  token?: string
  /** SHA-256 (hex) of each token that authenticates this client: several while one rotates. */
  tokenHashes?: string[]
  /** appids this client may use; '*' allows all. */
  apps: string[]
  /** May call the quota tools that spend WeChat's monthly allowance (clear_quota). */
  admin: boolean
  /** WeChat's pushes this client receives (their Event, else MsgType; '*': all); absent: none. */
  events?: string[]
  /** WeChat paths this client may call through the gateway (a trailing '*': a prefix); absent: none. */
  apis?: string[]
  /** What the WeChat-shaped token routes hand this client (absent: real): a surrogate works only here. */
  tokenForm?: 'real' | 'surrogate'
  /** Gateway calls a second this client may make at one broker instance; absent: no bound. */
  gatewayRate?: number
  /** Gateway calls this client may have in flight at one broker instance; absent: no bound. */
  gatewayConcurrency?: number
}

const HEX64 = /^[0-9a-fA-F]{64}$/

/**
 * A client's tokens: `token` or `token_sha256`, or lists of them in `tokens` / `tokens_sha256`
 * (a token rotates by listing the new one beside the old). Each clear token must be hard to
 * guess; no token may authenticate two clients. Messages never quote a token.
 */
function clientTokenHashes (o: Record<string, unknown>, name: string, seen: Map<string, string>): string[] {
  const fail = (why: string): never => {
    throw new ConfigError('BROKER_CLIENTS', `client ${name}: ${why}`)
  }
  const list = (key: string): unknown[] => {
    const v = o[key]
    if (v === undefined) return []
    if (key.startsWith('tokens')) {
      return Array.isArray(v) && v.length > 0 ? v : fail(`"${key}" must be a non-empty list`)
    }
    return [v]
  }
  const clear = [...list('token'), ...list('tokens')]
  const hashed = [...list('token_sha256'), ...list('tokens_sha256')]
  if (clear.length + hashed.length === 0) fail('needs "token", "token_sha256", "tokens" or "tokens_sha256"')
  const hashes = clear.map((t, i) => {
    if (typeof t !== 'string') return fail(`token ${i + 1} is not a string`)
    if (/\s/.test(t)) return fail(`token ${i + 1} contains whitespace`)
    if (t.length < 32) return fail(`token ${i + 1} is shorter than 32 characters`)
    if (new Set(t).size < 8) return fail(`token ${i + 1} has fewer than 8 distinct characters`)
    return sha256Hex(t)
  })
  for (const [i, h] of hashed.entries()) {
    if (typeof h !== 'string' || !HEX64.test(h)) fail(`token_sha256 ${i + 1} is not 64 hex digits`)
    hashes.push((h as string).toLowerCase())
  }
  for (const h of hashes) {
    const other = seen.get(h)
    if (other !== undefined) {
      fail(other === name ? 'lists the same token twice' : `has the same token as client ${other}`)
    }
    seen.set(h, name)
  }
  return hashes
}

export function parseClients (r: EnvReader): BrokerClientConfig[] {
  const list = r.json<unknown>('BROKER_CLIENTS', true)
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError('BROKER_CLIENTS', 'must be a non-empty JSON array')
  }
  const names = new Set<string>()
  const seen = new Map<string, string>()
  return list.map((item: unknown, i) => {
    const o = item as Record<string, unknown> | null
    if (typeof o?.name !== 'string' || o.name === '') {
      throw new ConfigError('BROKER_CLIENTS', `entry ${i} has no "name"`)
    }
    if (names.has(o.name)) throw new ConfigError('BROKER_CLIENTS', `lists client ${o.name} twice`)
    names.add(o.name)
    const tokenHashes = clientTokenHashes(o, o.name, seen)
    if (!Array.isArray(o.apps) || o.apps.length === 0 || o.apps.some(a => typeof a !== 'string')) {
      throw new ConfigError('BROKER_CLIENTS', `client ${o.name} needs "apps": a list of appids, or ["*"]`)
    }
    if (o.admin !== undefined && typeof o.admin !== 'boolean') {
      throw new ConfigError('BROKER_CLIENTS', `client ${o.name}: "admin" must be true or false`)
    }
    const events = o.events
    if (events !== undefined && (!Array.isArray(events) || events.some(e => typeof e !== 'string' || e === ''))) {
      throw new ConfigError('BROKER_CLIENTS', `client ${o.name}: "events" must be a list of event names, or ["*"]`)
    }
    const apis = o.apis
    if (
      apis !== undefined &&
      (!Array.isArray(apis) || apis.some(a => typeof a !== 'string' || !/^\/[\w/.-]*\*?$/.test(a)))
    ) {
      throw new ConfigError(
        'BROKER_CLIENTS',
        `client ${o.name}: "apis" must be a list of WeChat paths ("/wxa/...", "/cgi-bin/*")`
      )
    }
    return {
      name: o.name,
      tokenHashes,
      apps: o.apps as string[],
      admin: o.admin === true,
      events,
      apis,
      ...gatewayFields(o, o.name)
    }
  })
}

/** `token_form`, `gateway_rate` and `gateway_concurrency` of one client. */
function gatewayFields (
  o: Record<string, unknown>,
  name: string
): Pick<BrokerClientConfig, 'tokenForm' | 'gatewayRate' | 'gatewayConcurrency'> {
  const form = o.token_form ?? 'real'
  if (form !== 'real' && form !== 'surrogate') {
    throw new ConfigError('BROKER_CLIENTS', `client ${name}: "token_form" must be "real" or "surrogate"`)
  }
  const bound = (key: string): number | undefined => {
    const v = o[key]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new ConfigError('BROKER_CLIENTS', `client ${name}: "${key}" must be a whole number of at least 1`)
    }
    return v
  }
  return { tokenForm: form, gatewayRate: bound('gateway_rate'), gatewayConcurrency: bound('gateway_concurrency') }
}
