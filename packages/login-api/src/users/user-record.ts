// What a user is, apart from where it is stored: the login events and the exchanges name it too.

// A type, not an interface: it must fit the response schemas' open object types.
export type PhoneInfo = { phoneNumber: string, purePhoneNumber: string, countryCode: string }

/** A person's login in one mini-program (or official account): WeChat's per-app openid. */
export type Identity = { appid: string, openid: string }

export interface UserRecord {
  /** Stable across the company's apps: logins with the same unionid share it. */
  user_id: string
  unionid: string | null
  nickname: string | null
  head_pic: string | null
  phone: PhoneInfo | null
  /**
   * When WeChat verified `phone` (a phone code exchanged for it; the same number again keeps the
   * first time); null without a phone. A record from before this field: its updated_at.
   */
  phone_verified_at: string | null
  /** Every app this user has logged in from. */
  identities: Identity[]
  created_at: string
  updated_at: string
}

/** Fields a login may change; an absent field keeps what is stored. */
export interface UserPatch {
  nickname?: string
  head_pic?: string
  phone?: PhoneInfo
}
