// A page built with Component(): the phone button's event -> phoneCodeFrom -> login. The client
// retries a dropped answer with the same codes, so the user never taps twice for one login.
const { phoneCodeFrom } = require('@wxlogin/miniprogram')
const getClient = require('../../lib/client')
const messageFor = require('../../lib/messages')

const masked = phone => phone ? `${phone.purePhoneNumber.slice(0, 3)}****${phone.purePhoneNumber.slice(-4)}` : ''

Component({
  data: { phone: '', error: '', busy: false },
  methods: {
    async loginWith (phoneCode) {
      this.setData({ busy: true, error: '' })
      try {
        const answer = await getClient().login(phoneCode ? { phoneCode } : {})
        this.setData({ phone: masked(answer.user.phone), error: answer.phone_error ? messageFor(answer.phone_error.error) : '' })
        this.triggerEvent('loggedin', { userId: answer.user.user_id })
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
      // Refused or no quota: the user can still log in without a phone number.
      return undefined
    },
    onLoginWithoutPhone () {
      return this.loginWith(undefined)
    }
  }
})
