// Tests shared by the two SQL stores: group commit, orphan sweep, store failures mid-run.
import * as SqlOutbox from "@cellgate/adapters/SqlOutbox"
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
  onCommit: (info: SqlOutbox.CommitInfo) => void,
  onDrainCommit?: (info: SqlOutbox.DrainCommitInfo) => void
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
    body: (commits: Array<SqlOutbox.CommitInfo>) => Effect.Effect<A, E, Services | SqlClient.SqlClient>
  ) => {
    const commits: Array<SqlOutbox.CommitInfo> = []
    return body(commits).pipe(Effect.provide(makeStore((info) => commits.push(info)))) as Effect.Effect<
      A,
      E | StoreUnavailable,
      R
    >
  }

  it.effect("group commit: 64 concurrent enqueues share transactions", () =>
    withStore((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
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
        const outbox = yield* Outbox.Outbox
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

  const withOutcomes = <A, E>(
    body: (commits: Array<SqlOutbox.DrainCommitInfo>) => Effect.Effect<A, E, Services | SqlClient.SqlClient>
  ) => {
    const commits: Array<SqlOutbox.DrainCommitInfo> = []
    return body(commits).pipe(
      Effect.provide(makeStore(() => {}, (info) => commits.push(info)))
    ) as Effect.Effect<A, E | StoreUnavailable, R>
  }

  const dropDeadTrigger = Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      pg: () => sql.unsafe(`DROP TRIGGER IF EXISTS cellgate_test_dead ON outbox_dead_letters`),
      orElse: () => sql.unsafe(`DROP TRIGGER IF EXISTS cellgate_test_dead`)
    })).pipe(Effect.orDie)

  it.effect("outcome group commit: concurrent writes share transactions, each with its own lease answer", () =>
    withOutcomes((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const boxes = Array.from({ length: 24 }, (_, i) => `o:us:${String(i).padStart(2, "0")}`)
        // ids: mailbox i holds 3i+1, 3i+2, 3i+3
        yield* outbox.enqueue(
          boxes.flatMap((m, i) => [payload(m, 3 * i), payload(m, 3 * i + 1), payload(m, 3 * i + 2)])
        )
        assert.strictEqual((yield* outbox.claim({ owner: "w", now: 100, leaseMs: 100, limit: 100 })).length, 24)
        const lease = (i: number) => ({ mailbox: boxes[i], owner: "w", now: 120 })
        const first = (i: number) => 3 * i + 1
        const writes = boxes.map((_, i) => {
          switch (i % 8) {
            case 0:
              return outbox.complete(lease(i), first(i))
            case 1:
              return outbox.retry(lease(i), first(i), { nextAttemptAt: 500 + i, error: `HTTP 503 ${i}` })
            case 2:
              return outbox.deadLetter(lease(i), first(i), { reason: "permanent", lastStatus: 404, lastBody: "no" })
            case 3: // wrong owner
              return outbox.complete({ ...lease(i), owner: "x" }, first(i))
            case 4: // a payload of another mailbox
              return outbox.complete(lease(i), first(i) + 3)
            case 5: // expired lease
              return outbox.deadLetter({ ...lease(i), now: 201 }, first(i), {
                reason: "r",
                lastStatus: 1,
                lastBody: ""
              })
            case 6: // unknown id
              return outbox.retry(lease(i), 9999, { nextAttemptAt: 5, error: "x" })
            default:
              return outbox.release(lease(i), 700)
          }
        })
        const answers = yield* Effect.all(writes.map((w) => Effect.either(w)), { concurrency: "unbounded" })
        answers.forEach((a, i) => {
          const refused = [3, 4, 5, 6].includes(i % 8)
          if (refused) assert.isTrue(Either.isLeft(a) && a.left._tag === "LeaseLost", `write ${i}: ${String(a)}`)
          else assert.isTrue(Either.isRight(a), `write ${i}: ${String(a)}`)
        })
        assert.isBelow(commits.length, 24)
        assert.isTrue(commits.every((c) => c.ok))
        assert.strictEqual(commits.reduce((n, c) => n + c.writes, 0), 24)
        const infos = new Map((yield* outbox.mailboxes).map((b) => [b.mailbox, b]))
        for (let i = 0; i < 24; i++) {
          const head = yield* outbox.head(boxes[i], 10)
          const kind = i % 8
          const gone = kind === 0 || kind === 2
          assert.deepStrictEqual(
            head.map((p) => p.id),
            gone ? [first(i) + 1, first(i) + 2] : [0, 1, 2].map((k) => first(i) + k)
          )
          assert.strictEqual(infos.get(boxes[i])?.depth, head.length, `depth of ${boxes[i]}`)
          assert.deepStrictEqual(
            [head[0].attempts, head[0].lastError],
            kind === 1 ? [1, `HTTP 503 ${i}`] : gone ? [0, null] : [0, null]
          )
          assert.deepStrictEqual(
            [infos.get(boxes[i])?.leasedBy, infos.get(boxes[i])?.nextAttemptAt],
            kind === 7 ? [null, 700] : ["w", 3 * i]
          )
        }
        assert.deepStrictEqual(
          (yield* outbox.deadLetters).map((d) => [d.id, d.reason, d.lastStatus]),
          [[first(2), "permanent", 404], [first(10), "permanent", 404], [first(18), "permanent", 404]]
        )
      })
    ))

  it.effect("outcome group commit: several writes of one mailbox in one batch apply in order", () =>
    withOutcomes((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        yield* outbox.enqueue([payload("s:us:1", 1), payload("s:us:1", 2), payload("s:us:1", 3), payload("s:us:2", 4)])
        yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 10 })
        const lease = { mailbox: "s:us:1", owner: "w", now: 20 }
        const answers = yield* Effect.all([
          Effect.either(outbox.complete({ mailbox: "s:us:2", owner: "w", now: 20 }, 4)),
          Effect.either(outbox.complete(lease, 1)),
          Effect.either(outbox.deadLetter(lease, 2, { reason: "permanent", lastStatus: 409, lastBody: "" })),
          Effect.either(outbox.retry(lease, 3, { nextAttemptAt: 99, error: "HTTP 500" })),
          Effect.either(outbox.retry(lease, 3, { nextAttemptAt: 98, error: "HTTP 502" })),
          Effect.either(outbox.complete(lease, 2)), // already dead-lettered
          Effect.either(outbox.release({ mailbox: "s:us:2", owner: "w", now: 20 }, 50))
        ], { concurrency: "unbounded" })
        assert.deepStrictEqual(answers.map((a) => Either.isRight(a) ? "ok" : a.left._tag), [
          "ok",
          "ok",
          "ok",
          "ok",
          "ok",
          "LeaseLost",
          "ok"
        ])
        assert.isBelow(commits.length, 7)
        const [p3] = yield* outbox.head("s:us:1", 10)
        assert.deepStrictEqual([p3.id, p3.attempts, p3.nextAttemptAt, p3.lastError], [3, 2, 98, "HTTP 502"])
        assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => [b.mailbox, b.depth, b.leasedBy]), [[
          "s:us:1",
          1,
          "w"
        ]])
        assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => d.id), [2])
      })
    ))

  it.effect("outcome group commit: a failed commit answers StoreUnavailable to each write and writes nothing", () =>
    withOutcomes((commits) =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const sql = yield* SqlClient.SqlClient
        const boxes = Array.from({ length: 8 }, (_, i) => `d:us:${i}`)
        yield* outbox.enqueue(boxes.map((m, i) => payload(m, i)))
        yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 100 })
        yield* sql.onDialectOrElse({
          pg: () =>
            Effect.gen(function*() {
              yield* sql.unsafe(`CREATE OR REPLACE FUNCTION cellgate_test_dead() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql`)
              yield* sql.unsafe(`CREATE TRIGGER cellgate_test_dead BEFORE INSERT ON outbox_dead_letters
                FOR EACH ROW EXECUTE FUNCTION cellgate_test_dead()`)
            }),
          orElse: () =>
            Effect.asVoid(sql.unsafe(`CREATE TRIGGER cellgate_test_dead BEFORE INSERT ON outbox_dead_letters
              BEGIN SELECT RAISE(ABORT, 'injected'); END`))
        }).pipe(Effect.orDie)
        const answers = yield* Effect.all(
          boxes.map((m, i) =>
            Effect.either(
              outbox.deadLetter({ mailbox: m, owner: "w", now: 20 }, i + 1, {
                reason: "r",
                lastStatus: 400,
                lastBody: ""
              })
            )
          ),
          { concurrency: "unbounded" }
        )
        assert.isTrue(answers.every((a) => Either.isLeft(a) && a.left._tag === "StoreUnavailable"))
        assert.isTrue(commits.length < 8 && commits.every((c) => !c.ok))
        yield* dropDeadTrigger
        assert.strictEqual(yield* countPayloads, 8)
        assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => b.depth), boxes.map(() => 1))
        assert.deepStrictEqual(yield* outbox.deadLetters, [])
        // the store goes on: the next writes commit
        yield* outbox.complete({ mailbox: boxes[0], owner: "w", now: 20 }, 1)
        assert.strictEqual(yield* countPayloads, 7)
      }).pipe(Effect.ensuring(dropDeadTrigger))
    ))

  it.effect("sweepOrphans recreates missing mailbox rows (with their first payload's tenant) and counts them", () =>
    withStore(() =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const sql = yield* SqlClient.SqlClient
        yield* outbox.enqueue([
          payload("o:us:1", 1, { tenant: "o:5" }),
          payload("o:us:1", 2, { tenant: "o:6" }),
          payload("o:us:2", 3)
        ])
        assert.strictEqual(yield* SqlOutbox.sweepOrphans(100), 0)
        yield* sql`DELETE FROM outbox_mailboxes WHERE mailbox = 'o:us:1'`
        assert.strictEqual(yield* SqlOutbox.sweepOrphans(100), 1)
        assert.deepStrictEqual(
          (yield* outbox.mailboxes).map((b) => [b.mailbox, b.region, b.tenant, b.depth, b.nextAttemptAt]),
          [["o:us:1", "us", "o:5", 2, 100], ["o:us:2", "us", "i:10", 1, 3]]
        )
        assert.strictEqual(yield* SqlOutbox.sweepOrphans(100), 0)
      })
    ))
}
