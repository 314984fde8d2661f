import { APPID_PATTERN, ERROR_BODY_SCHEMA, ERROR_RESPONSES } from '@wxlogin/service-kit'

/** A code as WeChat issues them: printable ASCII, no spaces. */
const codeString = { type: 'string', maxLength: 128, pattern: '^[\\x21-\\x7e]*$' } as const

// Checked before any WeChat call, so nothing paid for is lost to a value Redis cannot store.
// Ajv compiles patterns with the u flag: \p{Cs} is a lone surrogate (not well-formed
// Unicode), \p{Cc} a control character, \p{Bidi_C} the bidi overrides that disguise text,
// \p{Co} private use, noncharacters, and the invisible (default-ignorable) characters that make
// "ad\u00adm\u00adin" look like "admin": soft hyphens, zero-width spaces, tag characters, Hangul
// fillers; \p{Zl} and \p{Zp} (U+2028, U+2029) end a line in logs and in JavaScript source. The
// zero-width joiner and emoji variation selectors stay: emoji are built with them.
// The login stores the nickname NFC-normalised.
const nickname = {
  type: 'string',
  maxLength: 64,
  pattern:
    '^(?:[\\u200D\\uFE0E\\uFE0F]|[^\\p{Cc}\\p{Cs}\\p{Co}\\p{Zl}\\p{Zp}\\p{Bidi_C}' +
    '\\p{Noncharacter_Code_Point}\\p{Default_Ignorable_Code_Point}])*$'
} as const
// A URL that is safe to put in HTML or a header as it is: no spaces, quotes or angle brackets.
const headPic = { type: 'string', maxLength: 512, pattern: '^(https://[^\\s"\'<>\\\\`\\p{Cc}\\p{Cs}]+)?$' } as const

export const thirdLoginBody = {
  type: 'object',
  required: ['code'],
  properties: {
    code: { ...codeString, minLength: 1 },
    // Which mini-program (LOGIN_APPS); without it, WeChat's Referer or the only app served.
    appid: { type: 'string', maxLength: 32, pattern: APPID_PATTERN },
    // Empty means "not granted": form posts send the field either way.
    phoneCode: codeString,
    nickname,
    head_pic: headPic,
    // >= 128 random bits, chosen by the client per login attempt and sent again on its retries:
    // 32+ hex digits, or 22+ base64url characters (not all of them hex digits).
    retry_key: {
      type: 'string',
      maxLength: 128,
      pattern: '^(?:[0-9a-fA-F]{32,128}|(?=[A-Za-z0-9_-]*[g-zG-Z_-])[A-Za-z0-9_-]{22,128})$',
      description: 'A fresh random value per login attempt, the same on its retries: only it gets a kept answer'
    }
  }
} as const

export const phoneBody = {
  type: 'object',
  required: ['phoneCode'],
  additionalProperties: false,
  properties: { phoneCode: { ...codeString, minLength: 1 } }
} as const

const string = { type: 'string' } as const
const stringOrNull = { type: ['string', 'null'] } as const

export const userSchema = {
  type: 'object',
  required: ['user_id', 'appid', 'openid', 'unionid', 'nickname', 'head_pic', 'phone', 'phone_verified_at'],
  properties: {
    user_id: { type: 'string', description: 'Stable across apps: logins with the same unionid share it' },
    appid: string,
    openid: string,
    unionid: stringOrNull,
    nickname: stringOrNull,
    head_pic: stringOrNull,
    phone: {
      type: ['object', 'null'],
      required: ['phoneNumber', 'purePhoneNumber', 'countryCode'],
      properties: { phoneNumber: string, purePhoneNumber: string, countryCode: string }
    },
    phone_verified_at: {
      type: ['string', 'null'],
      format: 'date-time',
      description:
        'When WeChat verified the phone (a phone code exchanged for it); null without one. The mini-program ' +
          'shows the phone button only while this is null (client.needsPhone()): each tap is billed'
    }
  }
} as const

export const loginResponse = {
  type: 'object',
  required: ['token', 'expires_in', 'is_new_user', 'user', 'phone_error'],
  properties: {
    token: {
      type: 'string',
      description:
        'The session token: opaque, or with SESSION_FORMAT=jwt a signed JWT (verify it against /.well-known/jwks.json)'
    },
    expires_in: {
      type: 'integer',
      description: 'Seconds the token lives: SESSION_TTL_SECONDS, or ACCESS_TOKEN_TTL_SECONDS for a JWT'
    },
    refresh_token: {
      type: 'string',
      description: 'SESSION_FORMAT=jwt only: exchanged once at POST /api/user/token/refresh for a new pair'
    },
    is_new_user: { type: 'boolean' },
    user: userSchema,
    phone_error: { ...ERROR_BODY_SCHEMA, type: ['object', 'null'] }
  }
} as const

export const errorResponses = ERROR_RESPONSES

export const refreshBody = {
  type: 'object',
  required: ['refresh_token'],
  additionalProperties: false,
  properties: { refresh_token: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[\\x21-\\x7e]*$' } }
} as const

export const refreshAnswer = {
  type: 'object',
  required: ['token', 'expires_in', 'refresh_token'],
  properties: {
    token: { type: 'string', description: 'A new access token (JWT)' },
    expires_in: { type: 'integer', description: 'Seconds the access token lives (ACCESS_TOKEN_TTL_SECONDS)' },
    refresh_token: { type: 'string', description: 'The next refresh token: the one sent is spent' }
  }
} as const

const publicJwk = {
  type: 'object',
  required: ['kty', 'kid', 'alg', 'use'],
  properties: { kty: string, kid: string, alg: string, use: string, crv: string, x: string, y: string }
} as const

export const jwksAnswer = {
  type: 'object',
  required: ['keys'],
  properties: { keys: { type: 'array', items: publicJwk } }
} as const

export const sessionAnswer = {
  type: 'object',
  required: ['user_id', 'appid', 'openid'],
  properties: { user_id: string, appid: string, openid: string }
} as const

export const deleteAccountBody = {
  type: 'object',
  required: ['confirm'],
  additionalProperties: false,
  properties: {
    confirm: {
      type: 'boolean',
      const: true,
      description: 'Must be true: the account and everything kept of it are deleted'
    }
  }
} as const

export const logoutQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    all: {
      type: 'string',
      enum: ['true', 'false'],
      description: 'true: end every session of the user, on every device and app'
    }
  }
} as const
