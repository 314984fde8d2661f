import { isIP } from 'node:net'
import proxyAddr from '@fastify/proxy-addr'
import { ConfigError, type EnvReader } from './env.js'

/**
 * Which proxies in front of a service may write X-Forwarded-For: none, the last N hops, or the
 * listed addresses and CIDR ranges. "Trust everything" is not offered: the left-most entry is
 * whatever the client wrote, so it would let any client pick its own rate-limit key.
 */
export type TrustProxy = { kind: 'none' } | { kind: 'hops', hops: number } | { kind: 'list', entries: string[] }

/** The function fastify's trustProxy takes: (address, hop index) -> may that hop forward for us? */
export type TrustFn = (address: string, hop: number) => boolean

const NAMED = new Set(['loopback', 'linklocal', 'uniquelocal'])

/**
 * TRUST_PROXY: `false` (default), a hop count (`1` behind one ingress), or a comma-separated list
 * of proxy addresses, CIDR ranges and the names loopback, linklocal, uniquelocal. `true` means
 * one hop: taking the client's own left-most entry is never what an operator wants.
 */
export function readTrustProxy (r: EnvReader, name = 'TRUST_PROXY'): TrustProxy {
  const raw = r.optionalString(name)
  if (raw === undefined || /^(false|no|off)$/i.test(raw)) return { kind: 'none' }
  if (/^(true|yes|on)$/i.test(raw)) return { kind: 'hops', hops: 1 }
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw)
    if (hops > 10) throw new ConfigError(name, 'is a hop count above 10; list the proxies instead')
    return hops === 0 ? { kind: 'none' } : { kind: 'hops', hops }
  }
  const entries = raw
    .split(',')
    .map(s => s.trim())
    .filter(Boolean)
  for (const e of entries) {
    if (NAMED.has(e)) continue
    const [addr, bits, extra] = e.split('/')
    if (
      extra !== undefined ||
      addr === undefined ||
      isIP(addr) === 0 ||
      (bits !== undefined && !/^\d{1,3}$/.test(bits))
    ) {
      throw new ConfigError(
        name,
        'must be false, a hop count, or a comma-separated list of proxy addresses, CIDR ranges, loopback, linklocal ' +
          'or uniquelocal'
      )
    }
  }
  try {
    proxyAddr.compile(entries)
  } catch {
    throw new ConfigError(name, 'holds an invalid address or CIDR range')
  }
  return { kind: 'list', entries }
}

export function trustFn (tp: TrustProxy): TrustFn | false {
  switch (tp.kind) {
    case 'none':
      return false
    // Hop 0 is the socket peer (our proxy); hops 1..N-1 are the proxies behind it. The entry at
    // hop N was written by the outermost trusted proxy: the client as that proxy saw it.
    case 'hops':
      return (_addr, hop) => hop < tp.hops
    case 'list':
      return proxyAddr.compile(tp.entries)
  }
}

/** The client address to key limits by: what the trusted hops say, if it is an address at all. */
export function clientAddress (ip: string | undefined, socketAddress: string | undefined): string {
  if (ip !== undefined && isIP(ip) !== 0) return ip
  return socketAddress ?? 'unknown'
}

/** An IPv6 address as its eight 16-bit groups (an embedded IPv4 tail included); null if not IPv6. */
function ipv6Groups (address: string): number[] | null {
  if (isIP(address) !== 6) return null
  let text = address.replace(/%.*$/, '')
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const part = (s: string | undefined): number[] =>
    s === undefined || s === '' ? [] : s.split(':').map(h => parseInt(h, 16))
  const left = part(head)
  const right = part(tail)
  return tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
}

/**
 * What a per-IP limit counts by: an IPv4 address as it is (also when it arrives IPv4-mapped),
 * an IPv6 address by its network of `ipv6Prefix` bits. One subscriber usually holds a whole /64,
 * so counting each /128 would let it pass any limit by changing addresses.
 */
export function limitAddress (address: string, ipv6Prefix: number): string {
  const groups = ipv6Groups(address)
  if (groups === null) return address
  if (groups.slice(0, 5).every(g => g === 0) && groups[5] === 0xffff) {
    const [high, low] = [groups[6] as number, groups[7] as number]
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  const masked = groups.map((g, i) => {
    const bits = Math.max(0, Math.min(16, ipv6Prefix - i * 16))
    return bits === 0 ? 0 : g & (0xffff << (16 - bits)) & 0xffff
  })
  return `${masked.map(g => g.toString(16)).join(':')}/${ipv6Prefix}`
}
