// Key rotation for personal data at rest on PostgreSQL and MariaDB (the Redis case and the tool's
// usage errors are in pii-reseal.test.ts): a file of their own, each file within tap's timeout.
import { DIALECTS } from './sql.js'
import { resealCase } from './pii-reseal-case.js'

for (const store of DIALECTS) resealCase(store)
