import { randomBytes } from 'node:crypto'
import { encrypt, getSignature } from '@wecom/crypto'

/** What an app's console holds for message push: where, and how. */
export type PushTarget = Pick<PushRequest, 'url' | 'token' | 'aesKey' | 'mode' | 'format'>

/** How WeChat sends a push: the console's 消息加密方式 and 数据格式. */
export interface PushRequest {
  /** The server's push URL (…/wechat/push/{appid}). */
  url: string
  appid: string
  /** The console's Token and (compatible, safe) EncodingAESKey. */
  token: string
  aesKey?: string
  mode: 'plain' | 'compatible' | 'safe'
  format: 'xml' | 'json'
  message: Record<string, string | number>
  /** Sent again this many times while not answered `success` (WeChat: 3). */
  resends?: number
  /** The pause between sends (WeChat waits 5 s for an answer). */
  resendAfterMs?: number
}

export interface PushOutcome {
  attempts: number
  /** The last answer: `success`, or what came instead (a status, or `network`). */
  answered: string
}

const xmlOf = (m: Record<string, string | number>): string =>
  `<xml>${Object.entries(m)
    .map(([k, v]) => (typeof v === 'number' ? `<${k}>${v}</${k}>` : `<${k}><![CDATA[${v}]]></${k}>`))
    .join('')}</xml>`

/** One push, signed and (compatible, safe) encrypted as WeChat does, with @wecom/crypto. */
export function pushRequest (
  p: PushRequest,
  timestamp = String(Math.floor(Date.now() / 1000))
): {
    url: string
    body: string
    contentType: string
  } {
  const nonce = randomBytes(8).toString('hex')
  const query = new URLSearchParams({ signature: getSignature(p.token, timestamp, nonce, ''), timestamp, nonce })
  const plain = p.format === 'json' ? JSON.stringify(p.message) : xmlOf(p.message)
  let body = plain
  if (p.mode !== 'plain') {
    if (p.aesKey === undefined) throw new Error('compatible and safe mode need the EncodingAESKey')
    const ciphered = encrypt(p.aesKey, plain, p.appid)
    query.set('encrypt_type', 'aes')
    query.set('msg_signature', getSignature(p.token, timestamp, nonce, ciphered))
    const outer: Record<string, string | number> =
      p.mode === 'compatible'
        ? { ...p.message, Encrypt: ciphered }
        : { ToUserName: String(p.message.ToUserName ?? ''), Encrypt: ciphered }
    body = p.format === 'json' ? JSON.stringify(outer) : xmlOf(outer)
  }
  const sep = p.url.includes('?') ? '&' : '?'
  return {
    url: `${p.url}${sep}${query.toString()}`,
    body,
    contentType: p.format === 'json' ? 'application/json' : 'text/xml'
  }
}

/** Sent as WeChat sends it: again (freshly signed) while the answer is not `success`. */
export async function sendPush (p: PushRequest): Promise<PushOutcome> {
  const sends = 1 + (p.resends ?? 3)
  let answered = ''
  for (let attempt = 1; attempt <= sends; attempt++) {
    const req = pushRequest(p)
    try {
      const res = await fetch(req.url, {
        method: 'POST',
        headers: { 'content-type': req.contentType },
        body: req.body,
        signal: AbortSignal.timeout(5000)
      })
      const text = await res.text()
      answered = res.status === 200 && text === 'success' ? 'success' : `${res.status}`
    } catch {
      answered = 'network'
    }
    if (answered === 'success') return { attempts: attempt, answered }
    if (attempt < sends) await new Promise(resolve => setTimeout(resolve, p.resendAfterMs ?? 5000))
  }
  return { attempts: sends, answered }
}
