// A page built with Component(). Who the user is comes first: a login with wx.login's code alone
// (free). The phone button is shown only when client.needsPhone() says the user has no phone
// WeChat verified: every successful tap is billed, so a returning user (a reinstall, a second
// mini-program of the same unionid) is not asked again. The button's event -> phoneCodeFrom ->
// login with the phone code; the client retries a dropped answer with the same codes, so the
// user never taps twice for one login.
const { phoneCodeFrom } = require('@wxlogin/miniprogram')
const getClient = require('../../lib/client')
const messageFor = require('../../lib/messages')

const masked = phone => phone ? `${phone.purePhoneNumber.slice(0, 3)}****${phone.purePhoneNumber.slice(-4)}` : ''

Component({
  data: { phone: '', error: '', busy: false, needsPhone: false },
  lifetimes: {
    attached () { return this.start() }
  },
  methods: {
    async start () {
      const client = getClient()
      this.setData({ busy: true })
      try {
        if (client.session() === null) await client.login()
        this.show()
      } catch (err) {
        // Not logged in: the buttons stay, so the user can try again.
        this.setData({ error: messageFor(err.code), needsPhone: true })
      } finally {
        this.setData({ busy: false })
      }
    },
    show (phoneError) {
      const client = getClient()
      const s = client.session()
      this.setData({
        needsPhone: client.needsPhone(),
        phone: masked(s && s.user && s.user.phone),
        error: phoneError ? messageFor(phoneError.error) : ''
      })
      if (s && s.user) this.triggerEvent('loggedin', { userId: s.user.user_id })
    },
    async loginWith (phoneCode) {
      this.setData({ busy: true, error: '' })
      try {
        const answer = await getClient().login(phoneCode ? { phoneCode } : {})
        this.show(answer.phone_error)
      } catch (err) {
        this.setData({ error: messageFor(err.code) })
      } finally {
        this.setData({ busy: false })
      }
    },
    // bindgetphonenumber and bindgetrealtimephonenumber both land here.
    onPhoneNumber (event) {
      const result = phoneCodeFrom(event)
      if (result.code) return this.loginWith(result.code)
      this.setData({ error: messageFor(result.error) })
      // Refused or no quota: the user is logged in already, without a phone number.
      return undefined
    },
    onLoginWithoutPhone () {
      return this.loginWith(undefined)
    }
  }
})
