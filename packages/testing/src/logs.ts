import { Writable } from 'node:stream'

/** A stream to hand to pino that keeps every line, so tests can search logs for secrets. */
export class LogCapture extends Writable {
  readonly chunks: string[] = []
  override _write (chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk.toString())
    cb()
  }

  text (): string {
    return this.chunks.join('')
  }

  lines (): Array<Record<string, unknown>> {
    return this.text()
      .split('\n')
      .filter(Boolean)
      .map(l => JSON.parse(l) as Record<string, unknown>)
  }
}
