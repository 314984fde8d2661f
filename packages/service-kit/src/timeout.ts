/**
 * `p`, or the error `onTimeout` makes once `ms` have passed, whichever comes first. What `p`
 * stands for goes on: only this wait gives up (a late Redis reply is dropped, a token refresh
 * still serves the next caller).
 */
export async function withTimeout<T> (p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => {
        reject(onTimeout())
      },
      Math.max(0, ms)
    )
  })
  try {
    return await Promise.race([p, expired])
  } finally {
    clearTimeout(timer)
  }
}
