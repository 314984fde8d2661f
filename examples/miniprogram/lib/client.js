// One client for the whole mini-program: its session, its in-flight login and its re-login on
// a 401 are shared by every page. Created on first use, when getApp() is there.
const { createLoginClient } = require('@wxlogin/miniprogram')

let client = null
module.exports = function getClient () {
  if (client === null) client = createLoginClient({ baseUrl: getApp().globalData.baseUrl })
  return client
}
