// /api/user/me through client.request: the session is attached, and a 401 (session ended
// elsewhere) is one silent re-login and a replay, not an error for the user.
const getClient = require('../../lib/client')
const messageFor = require('../../lib/messages')

Component({
  data: { user: {}, phone: '', error: '' },
  lifetimes: {
    attached () { return this.load() }
  },
  methods: {
    async load () {
      try {
        const res = await getClient().request({ url: '/api/user/me' })
        if (res.statusCode !== 200) throw Object.assign(new Error('me'), { code: res.data && res.data.error })
        const p = res.data.phone
        this.setData({ user: res.data, phone: p ? `${p.purePhoneNumber.slice(0, 3)}****${p.purePhoneNumber.slice(-4)}` : '' })
      } catch (err) {
        this.setData({ error: messageFor(err.code) })
      }
    },
    async onLogout () {
      await getClient().logout()
      wx.reLaunch({ url: '/pages/login/index' })
    }
  }
})
