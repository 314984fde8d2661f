import nock from 'nock'

interface Teardownable {
  teardown: (fn: () => unknown) => void
}

/** nock for one test: no real network while it runs; mocks cleaned and network restored after. */
export function useNock (t: Teardownable): typeof nock {
  nock.disableNetConnect()
  t.teardown(() => {
    nock.cleanAll()
    nock.enableNetConnect()
  })
  return nock
}
