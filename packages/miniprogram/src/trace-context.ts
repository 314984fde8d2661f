/**
 * W3C trace context for the mini-program's requests (the `traceparent` header): one trace id an
 * operation (a login with its retries, a request with its replay after a refresh), a new parent
 * span id each attempt, sampled. The servers continue the trace, so the id in a `LoginError` a
 * user reports finds the login's trace, hop by hop. Ids are random but not secret: Math.random
 * serves where the runtime has nothing better, without waiting on wx.getRandomValues.
 */
function randomHex (length: number): string {
  let out = ''
  // (0x100000000 + n) in hex is '1' and 8 digits: the digits, zero-padded without padStart (ES2017).
  while (out.length < length) out += (0x100000000 + Math.floor(Math.random() * 0x100000000)).toString(16).slice(1)
  out = out.slice(0, length)
  // All zeros is an invalid id in the W3C format.
  return /^0+$/.test(out) ? `${out.slice(0, -1)}1` : out
}

/** 32 hex digits: the trace of one operation. */
export function newTraceId (): string {
  return randomHex(32)
}

/** The header of one attempt within the trace `traceId`. */
export function traceparent (traceId: string): string {
  return `00-${traceId}-${randomHex(16)}-01`
}
