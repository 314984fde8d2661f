// What each failure means to the user, in the words the page shows.
const MESSAGES = {
  user_denied: '你没有授权手机号，可以先不绑定手机号登录。',
  no_quota: '手机号快捷登录暂不可用，请稍后再试或先登录。',
  failed: '没有拿到手机号，请重试。',
  invalid_code: '登录已过期，请重试。',
  rate_limited: '操作太频繁，请稍后再试。',
  network_error: '网络不太好，请检查网络后重试。',
  timeout: '网络超时，请重试。',
  high_risk_user: '当前账号存在风险，暂时无法登录。',
  upstream_unavailable: '服务繁忙，请稍后再试。',
  store_unavailable: '服务繁忙，请稍后再试。',
  exchange_in_progress: '正在登录，请稍候。'
}

module.exports = function messageFor (code) {
  return MESSAGES[code] || '登录失败，请重试。'
}
