// The PostgreSQL store: the conformance suite, group commit, the mailbox-row race of docs/outbox.md (both orders, two
// connections, one transaction held open), racing claimers, the volume gate across processes, store failures.
// Runs on its own database (test/support/Postgres.ts); PostgreSQL missing is a failure, not a skip.
import * as Postgres from "@cellgate/adapters/Postgres"
import * as SqlOutbox from "@cellgate/adapters/SqlOutbox"
import type { IntegrationId, StoreUnavailable } from "@cellgate/core"
import { Outbox, StoreHealth, VolumeGate } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Layer, TestServices } from "effect"
import { adminUrl, layer as testDatabase, TestDatabase, urlFor, withClient } from "../support/Postgres.js"
import { postgresStore } from "../support/Stores.js"
import { conformance, names, payload } from "./Conformance.js"
import { sqlSuite } from "./SqlSuites.js"

const store = (options: Omit<Postgres.Options, "url"> = {}) =>
  Layer.unwrapEffect(Effect.map(TestDatabase, (db) => postgresStore(db.url, options)))

const waitForLockWaiters = (n: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const count = sql`SELECT COUNT(*) AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`.pipe(
      Effect.map((rows) => Number(rows[0].n)),
      Effect.orDie
    )
    const loop: Effect.Effect<void> = Effect.flatMap(
      count,
      (c) => (c >= n ? Effect.void : Effect.zipRight(Effect.sleep("10 millis"), loop))
    )
    return loop.pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no lock waiter") }))
  })

const drainedMailbox = Effect.gen(function*() {
  const outbox = yield* Outbox.Outbox
  yield* outbox.enqueue([payload("race:us:1", 1)])
  assert.deepStrictEqual(names(yield* outbox.claim({ owner: "w", now: 10, leaseMs: 1000, limit: 1 })), ["race:us:1"])
  yield* outbox.complete({ mailbox: "race:us:1", owner: "w", now: 10 }, 1)
})

const noOrphans = Effect.gen(function*() {
  const outbox = yield* Outbox.Outbox
  const boxes = yield* outbox.mailboxes
  const head = yield* outbox.head("race:us:1", 10)
  assert.deepStrictEqual(head.map((p) => p.id), [2])
  assert.deepStrictEqual(boxes.map((b) => [b.mailbox, b.depth]), [["race:us:1", 1]])
  assert.strictEqual(yield* SqlOutbox.sweepOrphans(0), 0)
})

layer(testDatabase, { timeout: "60 seconds" })("postgres store", (it) => {
  /** A test on the real clock (the lock waits below sleep), inside this block's database. */
  const live = <A, E>(name: string, self: () => Effect.Effect<A, E, TestDatabase>) =>
    it.effect(name, () => TestServices.provideLive(Effect.suspend(self)))

  conformance(it, store())
  sqlSuite(it, (onCommit, onDrainCommit) => store({ onCommit, onDrainCommit }))

  live(
    "race: enqueue in flight while the drained mailbox row is deleted — the row is kept",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statements = SqlOutbox.makeStatements(sql)
        yield* drainedMailbox
        const wrote = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        // connection A: the enqueue's statements, transaction held open
        const enqueue = yield* sql.withTransaction(
          statements.writeBatch([payload("race:us:1", 2)]).pipe(
            Effect.zipRight(Deferred.succeed(wrote, undefined)),
            Effect.zipRight(Deferred.await(commit))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(wrote)
        // connection B: the worker releases the drained mailbox (DELETE … AND depth = 0): waits on A's row lock
        const release = yield* Effect.fork(
          (yield* Outbox.Outbox).release({ mailbox: "race:us:1", owner: "w", now: 20 }, 30)
        )
        yield* waitForLockWaiters(1)
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(enqueue)
        yield* Fiber.join(release)
        yield* noOrphans
      }).pipe(Effect.provide(store()))
  )

  live(
    "race: mailbox row deleted in flight while an enqueue arrives — a new row is made",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statements = SqlOutbox.makeStatements(sql)
        yield* drainedMailbox
        const deleted = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        // connection B: release's statements, transaction held open
        const release = yield* sql.withTransaction(
          statements.releaseRows("race:us:1", "w", 30).pipe(
            Effect.zipRight(Deferred.succeed(deleted, undefined)),
            Effect.zipRight(Deferred.await(commit))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(deleted)
        // connection A: a real enqueue (group commit) waits on the deleted row's lock
        const enqueue = yield* Effect.fork((yield* Outbox.Outbox).enqueue([payload("race:us:1", 2)]))
        yield* waitForLockWaiters(1)
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(release)
        yield* Fiber.join(enqueue)
        yield* noOrphans
        const [box] = yield* (yield* Outbox.Outbox).mailboxes
        assert.deepStrictEqual([box.nextAttemptAt, box.leasedBy], [2, null])
      }).pipe(Effect.provide(store()))
  )

  live("racing claimers on separate connections never hold one mailbox together", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const names = Array.from({ length: 300 }, (_, i) => `claim:us:${i}`)
      yield* outbox.enqueue(names.map((m, i) => payload(m, i % 7)))
      const claimer = (owner: string) =>
        Effect.gen(function*() {
          const got: Array<string> = []
          while (true) {
            const batch = yield* outbox.claim({ owner, now: 100, leaseMs: 60_000, limit: 7 })
            if (batch.length === 0) return got
            got.push(...batch.map((c) => c.mailbox))
          }
        })
      const results = yield* Effect.all(["w1", "w2", "w3", "w4"].map(claimer), { concurrency: "unbounded" })
      const all = results.flat()
      assert.strictEqual(all.length, names.length)
      assert.strictEqual(new Set(all).size, names.length)
      const owners = new Map((yield* outbox.mailboxes).map((b) => [b.mailbox, b.leasedBy]))
      results.forEach((got, i) => got.forEach((m) => assert.strictEqual(owners.get(m), `w${i + 1}`)))
    }).pipe(Effect.provide(store({ maxConnections: 6 }))))

  live(
    "racing fair claimers (held counted) never hold one mailbox together, and take every mailbox",
    () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const boxes = Array.from({ length: 240 }, (_, i) => `fair:us:${i}`)
        yield* outbox.enqueue(boxes.map((m, i) => payload(m, i % 11, { integrationId: (i % 6) as IntegrationId })))
        const claimer = (owner: string) =>
          Effect.gen(function*() {
            const held = new Map<string, number>()
            const got: Array<string> = []
            while (true) {
              const batch = yield* outbox.claim({ owner, now: 100, leaseMs: 60_000, limit: 5, fairShare: 2, held })
              if (batch.length === 0) return got
              for (const c of batch) {
                got.push(c.mailbox)
                held.set(c.tenant, (held.get(c.tenant) ?? 0) + 1)
              }
            }
          })
        const results = yield* Effect.all(["w1", "w2", "w3", "w4"].map(claimer), { concurrency: "unbounded" })
        const all = results.flat()
        assert.strictEqual(all.length, boxes.length)
        assert.strictEqual(new Set(all).size, boxes.length)
        const owners = new Map((yield* outbox.mailboxes).map((b) => [b.mailbox, b.leasedBy]))
        results.forEach((got, i) => got.forEach((m) => assert.strictEqual(owners.get(m), `w${i + 1}`)))
      }).pipe(Effect.provide(store({ maxConnections: 6 })))
  )

  live(
    "two gateways enqueueing into the same mailboxes: in id order, each mailbox is numbered 1..N",
    () =>
      Effect.gen(function*() {
        const { url } = yield* TestDatabase
        const sql = yield* SqlClient.SqlClient
        const boxes = ["two:us:0", "two:us:1", "two:us:2", "two:us:3"]
        // one gateway also writes batches past 400 payloads (chunked statements in one transaction), so both the
        // one-statement and the chunked write meet on the same counter and mailbox rows (a lock order that differed
        // between them would deadlock)
        const gateway = (big: boolean) =>
          Effect.flatMap(Outbox.Outbox, (outbox) =>
            Effect.all(
              Array.from({ length: 80 }, (_, i) =>
                outbox.enqueue(
                  big && i % 20 === 0
                    ? Array.from({ length: 420 }, (_, k) => payload(boxes[(i + k) % 4], i))
                    : [payload(boxes[i % 4], i), payload(boxes[(i + 1) % 4], i), payload(boxes[i % 4], i)]
                )),
              { concurrency: 12, discard: true }
            )).pipe(Effect.provide(Postgres.layer({ url, maxConnections: 4 })))
        yield* Effect.all([gateway(false), gateway(true), gateway(false)], { concurrency: "unbounded" })
        const rows = yield* sql<{ readonly mailbox: string; readonly sequence: string | number }>`
        SELECT mailbox, sequence FROM outbox_payloads ORDER BY id`
        const counters = yield* sql<{ readonly mailbox: string; readonly last: string | number }>`
        SELECT mailbox, last FROM outbox_sequences ORDER BY mailbox`
        let total = 0
        for (const m of boxes) {
          const numbers = rows.filter((r) => r.mailbox === m).map((r) => Number(r.sequence))
          total += numbers.length
          assert.deepStrictEqual(numbers, numbers.map((_, i) => i + 1), `${m}: numbers in id order`)
          assert.strictEqual(Number(counters.find((c) => c.mailbox === m)?.last), numbers.length)
        }
        assert.strictEqual(total, 3 * 80 * 3 - 4 * 3 + 4 * 420)
      }).pipe(Effect.provide(store()))
  )

  live("volume gate across two processes: one UPSERT per hit, exactly one switch", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase
      const hits = (n: number) =>
        Effect.flatMap(VolumeGate.VolumeGate, (gate) =>
          Effect.all(
            Array.from({ length: n }, () => gate.hit("busy", 5_000, { limit: 200, windowMs: 3_600_000, holdMs: 1 })),
            { concurrency: 20 }
          )).pipe(Effect.provide(Postgres.layer({ url, maxConnections: 5, volumeBuffer: false })))
      yield* Effect.provide(Effect.void, store()) // reset the tables
      const [a, b] = yield* Effect.all([hits(150), hits(150)], { concurrency: 2 })
      const verdicts = [...a, ...b]
      assert.strictEqual(verdicts.filter((v) => v.switched).length, 1)
      assert.strictEqual(verdicts.filter((v) => v.bucketed).length, 100)
    }))

  live("three processes starting at once on an empty database all migrate and start", () =>
    Effect.gen(function*() {
      const name = yield* Effect.acquireRelease(
        Effect.gen(function*() {
          const name = `cellgate_test_m_${Math.random().toString(36).slice(2, 8)}`
          yield* withClient(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)).pipe(Effect.orDie)
          return name
        }),
        (name) =>
          withClient(adminUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
      )
      const start = Effect.flatMap(StoreHealth.StoreHealth, (h) => h.check).pipe(
        Effect.provide(Postgres.layer({ url: urlFor(name), maxConnections: 2 }))
      )
      const results = yield* Effect.all([start, start, start], { concurrency: "unbounded", mode: "either" })
      assert.isTrue(results.every(Either.isRight), String(results))
    }).pipe(Effect.scoped))

  live("unreachable server: the layer fails with StoreUnavailable", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(Effect.void, Postgres.layer({ url: "postgres://postgres@127.0.0.1:1/nothing" }))
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        assert.strictEqual(exit.cause.error._tag, "StoreUnavailable")
      } else assert.fail(`expected a StoreUnavailable failure, got ${String(exit)}`)
    }))

  live(
    "backend connections terminated mid-run: StoreUnavailable, then the pool recovers",
    () =>
      Effect.gen(function*() {
        const { url } = yield* TestDatabase
        const outbox = yield* Outbox.Outbox
        yield* outbox.enqueue([payload("t:us:1", 1)])
        const locked = yield* Deferred.make<void>()
        const unlock = yield* Deferred.make<void>()
        // another session holds a lock the enqueue needs
        const holder = yield* withClient(url, (sql) =>
          sql.withTransaction(
            sql`LOCK TABLE outbox_payloads IN ACCESS EXCLUSIVE MODE`.pipe(
              Effect.zipRight(Deferred.succeed(locked, undefined)),
              Effect.zipRight(Deferred.await(unlock))
            )
          )).pipe(Effect.orDie, Effect.fork)
        yield* Deferred.await(locked)
        const blocked = yield* Effect.fork(outbox.enqueue([payload("t:us:2", 2)]))
        yield* waitForLockWaiters(1)
        yield* withClient(url, (sql) =>
          sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'cellgate-victim'`).pipe(Effect.orDie)
        const error: StoreUnavailable = yield* Effect.flip(Fiber.join(blocked))
        assert.strictEqual(error._tag, "StoreUnavailable")
        yield* Deferred.succeed(unlock, undefined)
        yield* Fiber.join(holder)
        // the pool drops the dead connections and opens new ones: the store works again (a request that picked a
        // dead idle connection before the pool noticed gets StoreUnavailable: a 503 its sender retries)
        yield* outbox.enqueue([payload("t:us:3", 3)]).pipe(Effect.retry({ times: 3 }))
        assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => b.mailbox), ["t:us:1", "t:us:3"])
      }).pipe(Effect.provide(store({ applicationName: "cellgate-victim" })))
  )
})
