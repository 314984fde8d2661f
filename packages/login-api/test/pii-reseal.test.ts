// Key rotation for personal data at rest on Redis, and the tool's usage errors (the SQL stores:
// pii-reseal-sql.test.ts; the case itself: pii-reseal-case.ts).
import t from 'tap'
import { newPiiKeyLine } from '../src/users/pii.js'
import { runTool } from './tools.js'
import { resealCase } from './pii-reseal-case.js'

resealCase({ name: 'Redis', start: undefined })

t.test('pii-reseal: usage errors exit 2 with one line', async t => {
  const none = await runTool('cli/pii-reseal.js', { PII_ENCRYPTION_KEY: newPiiKeyLine('a') })
  t.equal(none.code, 2)
  t.match(none.stderr, /^pii-reseal: Invalid configuration: REDIS_URL or DATABASE_URL is required/)
  const noKeys = await runTool('cli/pii-reseal.js', { REDIS_URL: 'redis://127.0.0.1:1' })
  t.equal(noKeys.code, 2)
  t.match(noKeys.stderr, /PII_ENCRYPTION_KEY/)
})
