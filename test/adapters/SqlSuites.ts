// Tests shared by the two SQL stores: group commit, orphan sweep, store failures mid-run.
import { SqlStore } from "@cellgate/adapters"
import type { StoreUnavailable } from "@cellgate/core"
import { Outbox } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Vitest } from "@effect/vitest"
import { assert } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect, Either } from "effect"
import type { Services } from "../support/Stores.js"
import { payload } from "./Conformance.js"

export type MakeStore<R> = (
  onCommit: (info: SqlStore.CommitInfo) => void
) => Layer.Layer<Services | SqlClient.SqlClient, StoreUnavailable, R>

const installTrigger = (condition: "all" | "poison") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      pg: () =>
        Effect.gen(function*() {
          yield* sql.unsafe(`CREATE OR REPLACE FUNCTION cellgate_test_fail() RETURNS trigger AS $$
            BEGIN IF ${condition === "all" ? "true" : "NEW.path = '/poison'"} THEN RAISE EXCEPTION 'injected';
            END IF; RETURN NEW; END $$ LANGUAGE plpgsql`)
          yield* sql.unsafe(`CREATE TRIGGER cellgate_test_fail BEFORE INSERT ON outbox_payloads
            FOR EACH ROW EXECUTE FUNCTION cellgate_test_fail()`)
        }),
      orElse: () =>
        Effect.asVoid(sql.unsafe(`CREATE TRIGGER cellgate_test_fail BEFORE INSERT ON outbox_payloads
          ${condition === "all" ? "" : "WHEN NEW.path = '/poison'"}
          BEGIN SELECT RAISE(ABORT, 'injected'); END`))
    })).pipe(Effect.orDie)

const dropTrigger = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    pg: () => sql.unsafe(`DROP TRIGGER IF EXISTS cellgate_test_fail ON outbox_payloads`),
    orElse: () => sql.unsafe(`DROP TRIGGER IF EXISTS cellgate_test_fail`)
  })).pipe(Effect.orDie)

const countPayloads = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql`SELECT COUNT(*) AS n FROM outbox_payloads`, (rows) => Number(rows[0].n))
).pipe(Effect.orDie)

export const sqlSuite = <R>(it: Vitest.MethodsNonLive<R>, makeStore: MakeStore<R>) => {
  const withStore = <A, E>(
    body: (commits: Array<SqlStore.CommitInfo>) => Effect.Effect<A, E, Services | SqlClient.SqlClient>
  ) => {
    const commits: Array<SqlStore.CommitInfo> = []
    return body(commits).pipe(Effect.provide(makeStore((info) => commits.push(info)))) as Effect.Effect<
      A,
      E | StoreUnavailable,
      R
    >
  }

  it.effect("group commit: 64 concurrent enqueues share transactions", () =>
    withStore((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox
        yield* Effect.all(
          Array.from({ length: 64 }, (_, i) => outbox.enqueue([payload(`g:us:${i % 8}`, i), payload(`g:de:${i}`, i)])),
          { concurrency: "unbounded", discard: true }
        )
        assert.isBelow(commits.length, 64)
        assert.isTrue(commits.every((c) => c.ok))
        assert.strictEqual(commits.reduce((n, c) => n + c.requests, 0), 64)
        assert.strictEqual(commits.reduce((n, c) => n + c.payloads, 0), 128)
        assert.strictEqual(yield* countPayloads, 128)
        const boxes = yield* outbox.mailboxes
        assert.strictEqual(boxes.length, 72)
        assert.strictEqual(boxes.reduce((n, b) => n + b.depth, 0), 128)
      })
    ))

  it.effect("group commit: a failed commit fails every request of its batch, and only those", () =>
    withStore((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox
        yield* installTrigger("all")
        const all = yield* Effect.all(
          Array.from({ length: 64 }, (_, i) => Effect.either(outbox.enqueue([payload(`f:us:${i}`, i)]))),
          { concurrency: "unbounded" }
        )
        assert.isTrue(all.every((r) => Either.isLeft(r) && r.left._tag === "StoreUnavailable"))
        assert.isBelow(commits.length, 64)
        assert.isTrue(commits.every((c) => !c.ok))
        assert.strictEqual(yield* countPayloads, 0)
        yield* dropTrigger

        commits.length = 0
        yield* installTrigger("poison")
        const mixed = yield* Effect.all(
          Array.from({ length: 64 }, (_, i) =>
            Effect.either(outbox.enqueue([
              payload(`p:us:${i}`, i, i === 40 ? { path: "/poison" } : {}),
              payload(`p:de:${i}`, i)
            ]))),
          { concurrency: "unbounded" }
        )
        yield* dropTrigger
        const failed = mixed.flatMap((r, i) => (Either.isLeft(r) ? [i] : []))
        assert.include(failed, 40)
        const failedBatches = commits.filter((c) => !c.ok)
        assert.strictEqual(failedBatches.length, 1)
        assert.strictEqual(failed.length, failedBatches[0].requests)
        assert.strictEqual(yield* countPayloads, 2 * (64 - failed.length))
        const stored = new Set((yield* outbox.mailboxes).map((b) => b.mailbox))
        for (let i = 0; i < 64; i++) {
          assert.strictEqual(stored.has(`p:us:${i}`), !failed.includes(i), `request ${i}`)
        }
      }).pipe(Effect.ensuring(dropTrigger))
    ))

  it.effect("sweepOrphans recreates missing mailbox rows and counts them", () =>
    withStore(() =>
      Effect.gen(function*() {
        const outbox = yield* Outbox
        const sql = yield* SqlClient.SqlClient
        yield* outbox.enqueue([payload("o:us:1", 1), payload("o:us:1", 2), payload("o:us:2", 3)])
        assert.strictEqual(yield* SqlStore.sweepOrphans(100), 0)
        yield* sql`DELETE FROM outbox_mailboxes WHERE mailbox = 'o:us:1'`
        assert.strictEqual(yield* SqlStore.sweepOrphans(100), 1)
        assert.deepStrictEqual(
          (yield* outbox.mailboxes).map((b) => [b.mailbox, b.region, b.depth, b.nextAttemptAt]),
          [["o:us:1", "us", 2, 100], ["o:us:2", "us", 1, 3]]
        )
        assert.strictEqual(yield* SqlStore.sweepOrphans(100), 0)
      })
    ))
}
