import { XMLParser } from 'fast-xml-parser'

/** A push as stored and delivered: who, what, when, and the decrypted message as JSON. */
export interface PushMessage {
  appid: string
  /** WeChat's `Event`, else its `MsgType` (what clients subscribe to). */
  event: string
  openid: string
  /** WeChat's CreateTime (Unix seconds). */
  createTime: number
  /** What makes WeChat's resends of one message one message. */
  dedupeId: string
  message: Record<string, unknown>
}

// Values stay strings (an openid of digits is not a number); no entity is expanded.
const xml = new XMLParser({ parseTagValue: false, processEntities: false, ignoreDeclaration: true })

/** The body as an object: WeChat's XML (<xml>...</xml>) or JSON; null when it is neither. */
export function parseBody (text: string): Record<string, unknown> | null {
  const trimmed = text.trim()
  try {
    if (trimmed.startsWith('{')) {
      const v = JSON.parse(trimmed) as unknown
      return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
    }
    if (!trimmed.startsWith('<')) return null
    const doc = xml.parse(trimmed) as { xml?: unknown }
    return doc.xml !== null && typeof doc.xml === 'object' ? (doc.xml as Record<string, unknown>) : null
  } catch {
    return null
  }
}

const text = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined

/** A decrypted (or plaintext) push, or null when it lacks what every push carries. */
export function toPushMessage (appid: string, m: Record<string, unknown>, queryOpenid?: string): PushMessage | null {
  const event = text(m.Event) ?? text(m.MsgType)
  const createTime = Number(text(m.CreateTime))
  const openid = text(m.OpenID) ?? text(m.FromUserName) ?? queryOpenid
  if (event === undefined || openid === undefined || !Number.isInteger(createTime) || createTime <= 0) return null
  // A message by its MsgId; an event by whom it is about, when, and what (two withdrawals of one
  // user in one second differ by RevokeInfo). FromUserName is WeChat's push service, not the user.
  const dedupeId = text(m.MsgId) ?? `${openid}:${createTime}:${event}:${text(m.RevokeInfo) ?? ''}`
  return { appid, event, openid, createTime, dedupeId, message: m }
}
