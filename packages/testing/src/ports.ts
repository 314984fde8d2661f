import { createServer } from 'node:net'

/** A port the OS says is free right now on 127.0.0.1. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** What every test configuration of a service starts from: ephemeral ports, no logs, no Redis. */
export const TEST_SERVICE_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  metricsPort: 0,
  logLevel: 'silent',
  redis: undefined
} as const

/**
 * A PII_ENCRYPTION_KEY value for tests (`<key id>:<base64 of 32 bytes>`): fixed, so that a test
 * can read what another process wrote. Never a production key.
 */
export const TEST_PII_KEYS = 'test:dGVzdC1vbmx5LXBpaS1rZXktMzItYnl0ZXMtbG9uZyE='
