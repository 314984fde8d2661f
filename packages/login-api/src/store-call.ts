import { ServiceError } from '@wxlogin/service-kit'
import { errors } from './errors.js'

/** A store call; a Redis outage becomes a clean 503 (with Redis' error as its cause), never a 500. */
export async function storeCall<T> (op: Promise<T>): Promise<T> {
  try {
    return await op
  } catch (err) {
    if (err instanceof ServiceError) throw err
    throw errors.storeUnavailable(err)
  }
}
