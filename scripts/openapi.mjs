#!/usr/bin/env node
// Writes docs/openapi/{token-broker,login-api}.json from the route schemas (@fastify/swagger).
// `pnpm openapi` rebuilds and runs this; test/openapi.test.ts fails when the files are stale.
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { openapiDocuments } from './openapi-documents.mjs'

const dir = fileURLToPath(new URL('../docs/openapi/', import.meta.url))
mkdirSync(dir, { recursive: true })
for (const [name, doc] of Object.entries(await openapiDocuments())) {
  writeFileSync(`${dir}${name}.json`, `${JSON.stringify(doc, null, 2)}\n`)
  console.log(`wrote docs/openapi/${name}.json`)
}
