import t from 'tap'
import { ConfigError, scrubValue, startTracing, tracesProtocol, tracingEnabled } from '../src/index.js'
import { ScrubbingSpanProcessor } from '../src/tracing/scrub-spans.js'

t.test('tracing is on with an OTLP endpoint, unless the SDK or the traces exporter is switched off', async t => {
  t.notOk(tracingEnabled({}))
  t.notOk(tracingEnabled({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), 'other OTEL_ variables alone: off')
  t.ok(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }))
  t.ok(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }))
  t.notOk(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }))
  t.notOk(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }))
  t.equal(await startTracing({}, 'svc'), null, 'off: nothing started')
})

t.test('the protocol: http/protobuf by default, http/json, the traces-specific variable first; grpc refused', async t => {
  t.equal(tracesProtocol({}), 'http/protobuf')
  t.equal(tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), 'http/json')
  t.equal(tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }), 'http/protobuf')
  t.throws(() => tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), ConfigError)
  await t.rejects(startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, 'svc'), { name: 'StartupError', message: /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is "grpc"/ })
})

t.test('what leaves in a span: no query value, named secret or phone number', async t => {
  t.equal(scrubValue('/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=client-token'), '/cgi-bin/token?grant_type=_&appid=_&secret=_')
  t.equal(scrubValue('https://api.weixin.qq.com/sns/jscode2session?js_code=0a1&secret=s'), 'https://api.weixin.qq.com/sns/jscode2session?js_code=_&secret=_')
  t.equal(scrubValue('Request failed: {"code":"0a1b","openid":"o-123","phoneNumber":"+8613812345678"}'), 'Request failed: {"code":"_","openid":"_","phoneNumber":"_"}')
  t.equal(scrubValue('user 13812345678 called'), 'user [phone] called')
  t.equal(scrubValue('POST /api/user/thirdLogin'), 'POST /api/user/thirdLogin', 'paths pass')
  const span = {
    attributes: { 'url.full': 'http://b/x?access_token=AT', list: ['a?token=t'], n: 3 },
    events: [{ name: 'exception', attributes: { 'exception.message': 'GET http://w/cgi-bin/x?access_token=AT failed' } }],
    status: { code: 2, message: 'secret=abc' }
  }
  new ScrubbingSpanProcessor().onEnd(span as never)
  t.same(span, {
    attributes: { 'url.full': 'http://b/x?access_token=_', list: ['a?token=_'], n: 3 },
    events: [{ name: 'exception', attributes: { 'exception.message': 'GET http://w/cgi-bin/x?access_token=_ failed' } }],
    status: { code: 2, message: 'secret=_' }
  })
})
