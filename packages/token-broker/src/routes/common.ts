import type { FastifyReply, FastifyRequest } from 'fastify'
import { APPID_PATTERN, DEADLINE_HEADER, ERROR_BODY_SCHEMA, withTimeout } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { ServedToken } from '../credentials/token-manager.js'

export const appidParams = {
  type: 'object',
  required: ['appid'],
  properties: { appid: { type: 'string', pattern: APPID_PATTERN } }
} as const

export const errorBody = ERROR_BODY_SCHEMA

/** The answer for a value that expires: the access_token, or a ticket. */
export function expiringBody (field: 'access_token' | 'ticket'): object {
  return {
    type: 'object',
    required: [field, 'expires_in', 'expires_at'],
    properties: {
      [field]: { type: 'string' },
      expires_in: { type: 'integer', description: 'whole seconds left' },
      expires_at: { type: 'string', format: 'date-time' }
    }
  }
}

export const tokenBody = expiringBody('access_token')

export const sendToken = (reply: FastifyReply, served: ServedToken): object =>
  sendExpiring(reply, 'access_token', served)

// A token's expiry never changes, so its ISO form is computed once per token, not per request.
const isoCache = new WeakMap<object, string>()

/** The answer for a value that expires (expiringBody's shape), not to be cached by anyone between. */
export function sendExpiring (reply: FastifyReply, field: 'access_token' | 'ticket', served: ServedToken): object {
  const { record } = served
  let iso = isoCache.get(record)
  if (iso === undefined) {
    iso = new Date(record.expiresAt).toISOString()
    isoCache.set(record, iso)
  }
  reply.header('cache-control', 'no-store')
  return {
    [field]: record.token,
    expires_in: Math.max(0, Math.floor((record.expiresAt - Date.now()) / 1000)),
    expires_at: iso
  }
}

export interface AppParams {
  Params: { appid: string }
}

/** What is kept back for the answer itself to be written and travel. */
const ANSWER_MARGIN_MS = 50

/** When this request's caller stops waiting (Unix ms); Infinity when it did not say. */
export function callerDeadline (request: FastifyRequest): number {
  const raw = request.headers[DEADLINE_HEADER]
  if (typeof raw !== 'string' || !/^\d{1,7}$/.test(raw)) return Infinity
  return Date.now() + Number(raw) - ANSWER_MARGIN_MS
}

/**
 * Waits for `work` no longer than the caller does. What it waits for (a token refresh) goes on
 * and serves the next caller; only this answer gives up.
 */
export async function withinDeadline<T> (work: Promise<T>, deadline: number, appid: string): Promise<T> {
  if (deadline === Infinity) return await work
  return await withTimeout(work, deadline - Date.now(), () => errors.tokenUnavailable(appid))
}
