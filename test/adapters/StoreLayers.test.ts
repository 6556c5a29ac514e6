// `Sqlite.layer` / `Postgres.layer` are fast whoever composes them: the directory reads go through the directory
// cache and the volume gate counts in memory (added to the shared counter once a second), with both turned off on
// request. Observed from the database: a row changed behind the store's back, and the counter rows written.
import * as Postgres from "@cellgate/adapters/Postgres"
import * as Sqlite from "@cellgate/adapters/Sqlite"
import type { IntegrationId } from "@cellgate/core"
import { DirectoryStore, IntegrationRepo, VolumeGate } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { layer as testDatabase, TestDatabase } from "../support/Postgres.js"
import { resetTables } from "../support/Postgres.js"
import { tempDir } from "../support/Stores.js"
import { sampleDirectory } from "./Conformance.js"

const policy = { limit: 100, windowMs: 3_600_000, holdMs: 1_000 }

/** What the store answers for integration 10 after its row changed in the database, and the counter rows written. */
const observe = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* (yield* DirectoryStore.DirectoryStore).importDirectory(sampleDirectory)
  const repo = yield* IntegrationRepo.IntegrationRepo
  const before = yield* repo.byId(10 as IntegrationId)
  yield* sql`UPDATE integrations SET external_id = 'changed' WHERE id = 10`
  const after = yield* repo.byId(10 as IntegrationId)
  const gate = yield* VolumeGate.VolumeGate
  yield* gate.hit("k", 5_000, policy)
  yield* gate.hit("k", 5_001, policy)
  const counters = yield* sql<{ readonly n: number | string }>`SELECT COUNT(*) AS n FROM volume_counters`
  return {
    before: Option.map(before, (i) => i.externalId),
    after: Option.map(after, (i) => i.externalId),
    counterRows: Number(counters[0]!.n)
  }
})

describe("Sqlite.layer", () => {
  it.scoped("includes the directory cache and the buffered volume gate", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* observe.pipe(Effect.provide(Sqlite.layerWithSql({ path: path.join(dir, "db.sqlite") })))
      // served from the cache: the change is not seen yet; the two hits are still in memory
      assert.deepStrictEqual(result, { before: Option.some("ext-10"), after: Option.some("ext-10"), counterRows: 0 })
    }))

  it.scoped("without them on request: every read and hit reaches the database", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* observe.pipe(
        Effect.provide(
          Sqlite.layerWithSql({ path: path.join(dir, "db.sqlite"), directoryCache: false, volumeBuffer: false })
        )
      )
      assert.deepStrictEqual(result, { before: Option.some("ext-10"), after: Option.some("changed"), counterRows: 1 })
    }))

  it.scoped("the buffered hits reach the shared counter when the layer closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "db.sqlite")
      yield* Effect.flatMap(VolumeGate.VolumeGate, (gate) => gate.hit("k", 5_000, policy, 3)).pipe(
        Effect.provide(Sqlite.layer({ path: file }))
      )
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT key, hits FROM volume_counters`).pipe(
        Effect.provide(Sqlite.layerWithSql({ path: file }))
      )
      assert.deepStrictEqual(rows.map((r) => [r.key, Number(r.hits)]), [["k", 3]])
    }))
})

layer(testDatabase, { timeout: "60 seconds" })("Postgres.layer", (it) => {
  const store = (options: Omit<Postgres.Options, "url"> = {}) =>
    Layer.unwrapEffect(
      Effect.map(
        TestDatabase,
        (db) =>
          Layer.effectDiscard(resetTables).pipe(Layer.provideMerge(Postgres.layerWithSql({ ...options, url: db.url })))
      )
    )

  it.effect("includes the directory cache and the buffered volume gate", () =>
    Effect.gen(function*() {
      const result = yield* observe.pipe(Effect.provide(store()))
      assert.deepStrictEqual(result, { before: Option.some("ext-10"), after: Option.some("ext-10"), counterRows: 0 })
    }))

  it.effect("without them on request", () =>
    Effect.gen(function*() {
      const result = yield* observe.pipe(Effect.provide(store({ directoryCache: false, volumeBuffer: false })))
      assert.deepStrictEqual(result, { before: Option.some("ext-10"), after: Option.some("changed"), counterRows: 1 })
    }))
})
