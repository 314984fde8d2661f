/**
 * WeChat's rid/get hands back the request and response behind an error: they may hold an
 * access_token, a secret, a code, a ticket or a user's phone number. What a caller sees of them
 * has every such value replaced.
 */
const SENSITIVE = '(?:access_token|component_access_token|authorizer_access_token|secret|appsecret|session_key|js_code|code|ticket|phoneNumber|purePhoneNumber|encryptedData|iv)'
const IN_QUERY = new RegExp(`(^|[?&])(${SENSITIVE})=[^&#\\s]*`, 'gi')
const IN_JSON = new RegExp(`("${SENSITIVE}"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|[^,}\\]\\s]+)`, 'gi')
/** Mainland mobile numbers wherever they appear (a field this list does not name, say). */
const MOBILE = /(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)/g

export function scrubSecrets (text: string): string {
  return text
    .replace(IN_QUERY, '$1$2=***')
    .replace(IN_JSON, '$1"***"')
    .replace(MOBILE, '***')
}
