// The SQLite store: the conformance suite, group commit, pragmas, and store failures.
import * as Sqlite from "@cellgate/adapters/Sqlite"
import type { IntegrationId } from "@cellgate/core"
import { IntegrationRepo, Outbox, VolumeGate } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { sqliteStore, tempDir } from "../support/Stores.js"
import { conformance, payload } from "./Conformance.js"
import { sqlSuite } from "./SqlSuites.js"

layer(Layer.empty)("sqlite store", (it) => {
  conformance(it, sqliteStore())
  sqlSuite(it, (onCommit, onDrainCommit) => sqliteStore({ onCommit, onDrainCommit }))
})

describe("sqlite specifics", () => {
  it.effect("WAL, synchronous FULL by default and NORMAL on request, busy_timeout", () =>
    Effect.gen(function*() {
      const pragmas = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [mode] = yield* sql.unsafe(`PRAGMA journal_mode`)
        const [sync] = yield* sql.unsafe(`PRAGMA synchronous`)
        const [busy] = yield* sql.unsafe(`PRAGMA busy_timeout`)
        return [Object.values(mode)[0], Object.values(sync)[0], Object.values(busy)[0]]
      })
      assert.deepStrictEqual(yield* pragmas.pipe(Effect.provide(sqliteStore())), ["wal", 2, 5000])
      assert.deepStrictEqual(
        yield* pragmas.pipe(Effect.provide(sqliteStore({ synchronous: "normal", busyTimeoutMs: 100 }))),
        ["wal", 1, 100]
      )
    }))

  it.scoped("data survives reopening the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "db.sqlite")
      yield* Effect.flatMap(Outbox.Outbox, (o) => o.enqueue([payload("keep:us:1", 1)])).pipe(
        Effect.provide(Sqlite.layer({ path: file }))
      )
      const head = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("keep:us:1", 5)).pipe(
        Effect.provide(Sqlite.layer({ path: file }))
      )
      assert.deepStrictEqual(head.map((p) => p.id), [1])
    }))

  it.scoped("a file that cannot be opened fails the layer with StoreUnavailable", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fs.writeFileSync(path.join(dir, "not-a-dir"), "x")
      // the parent is a regular file: fails even for root (chmod would not stop root)
      const exit = yield* Effect.exit(
        Effect.provide(Effect.void, Sqlite.layer({ path: path.join(dir, "not-a-dir", "db.sqlite") }))
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.strictEqual(error?._tag, "StoreUnavailable")
      }
    }))

  it.effect("an enqueue on a closed store fails with StoreUnavailable (never hangs)", () =>
    Effect.gen(function*() {
      const outbox = yield* Effect.provide(Outbox.Outbox, sqliteStore())
      const error = yield* Effect.flip(outbox.enqueue([payload("late:us:1", 1)]))
      assert.strictEqual(error._tag, "StoreUnavailable")
    }))

  it.effect("writes that fail mid-run answer StoreUnavailable; reads go on; the store recovers", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const sql = yield* SqlClient.SqlClient
      yield* outbox.enqueue([payload("w:us:1", 1)])
      yield* sql.unsafe(`PRAGMA query_only = ON`) // every write now fails as on a read-only file
      const errors = [
        yield* Effect.flip(outbox.enqueue([payload("w:us:2", 2)])),
        yield* Effect.flip(outbox.claim({ owner: "w", now: 10, leaseMs: 10, limit: 1 })),
        yield* Effect.flip(outbox.replay("all", 10)),
        yield* Effect.flip(outbox.release({ mailbox: "w:us:1", owner: "w", now: 10 }, 10)),
        yield* Effect.flip((yield* VolumeGate.VolumeGate).hit("k", 1, { limit: 1, windowMs: 10, holdMs: 10 }))
      ]
      for (const e of errors) assert.strictEqual(e._tag, "StoreUnavailable")
      assert.strictEqual((yield* outbox.mailboxes).length, 1)
      assert.isTrue(
        (yield* Effect.exit((yield* IntegrationRepo.IntegrationRepo).byId(1 as IntegrationId))).pipe(Exit.isSuccess)
      )
      yield* sql.unsafe(`PRAGMA query_only = OFF`)
      yield* outbox.enqueue([payload("w:us:3", 3)])
      assert.strictEqual((yield* outbox.head("w:us:3", 1)).length, 1)
    }).pipe(Effect.provide(sqliteStore())))
})
