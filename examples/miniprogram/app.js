// baseUrl: your login-api, an https:// domain on the mini-program's request whitelist
// (小程序后台 > 开发管理 > 开发设置 > 服务器域名 > request 合法域名).
App({
  globalData: { baseUrl: 'https://login.example.com' }
})
