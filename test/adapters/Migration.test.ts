// `0007_fair_delivery` on a database that already holds payloads and dead letters (migrated to 6 first), on SQLite
// and PostgreSQL: tenants, sequence numbers and counters are back-filled as docs/outbox.md#tables says, and the store
// counts on from them.
import * as SqlMigrations from "@cellgate/adapters/SqlMigrations"
import * as SqlOutbox from "@cellgate/adapters/SqlOutbox"
import type { IntegrationId, RegionName } from "@cellgate/core"
import type { Outbox } from "@cellgate/core"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import { layer as testDatabase, TestDatabase, withClient } from "../support/Postgres.js"
import { tempDir } from "../support/Stores.js"

const upToTraceContext = Migrator.make({})({
  loader: Migrator.fromRecord(
    Object.fromEntries(Object.entries(SqlMigrations.migrations).filter(([name]) => name < "0007"))
  ),
  table: SqlMigrations.migrationsTable
})

/** A row of the payload tables as 0006 has them. */
const oldRow = (mailbox: string, integrationId: number | null, receivedAt: number) => ({
  mailbox,
  provider: mailbox.split(":")[0],
  region: "us",
  integration_id: integrationId,
  method: "POST",
  path: "/x",
  headers: "{}",
  body: Buffer.from([receivedAt]),
  received_at: receivedAt,
  delivery_id: `old-${receivedAt}`,
  attempts: 0,
  next_attempt_at: receivedAt,
  last_error: null,
  reply_target: null,
  trace_context: null
})

const dead = (id: number, mailbox: string, integrationId: number | null, receivedAt: number) => ({
  id,
  ...oldRow(mailbox, integrationId, receivedAt),
  dead_at: 50,
  reason: "max_attempts",
  last_status: 500,
  last_body: null
})

const backFill = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* upToTraceContext
  // ids 1..8 in this order
  const payloads = [
    oldRow("jira:us:1", 10, 1),
    oldRow("bitbucket:us:1", null, 2),
    oldRow("jira:us:1", 10, 3),
    oldRow("github:us:1", 12, 4),
    oldRow("bitbucket:us:1", null, 5),
    oldRow("jira:us:1", 10, 6),
    // no integration on the first payload, one on the second: the mailbox takes `i:11`
    oldRow("mixed:us:1", null, 7),
    oldRow("mixed:us:1", 11, 8)
  ]
  for (const p of payloads) yield* sql`INSERT INTO outbox_payloads ${sql.insert(p)}`
  for (
    const d of [
      dead(20, "jira:us:1", 10, 9),
      dead(21, "gone:us:1", 13, 10), // a mailbox with no payloads and no row left
      dead(22, "jira:us:1", 10, 11)
    ]
  ) yield* sql`INSERT INTO outbox_dead_letters ${sql.insert(d)}`
  for (const [mailbox, depth] of [["jira:us:1", 3], ["bitbucket:us:1", 2], ["github:us:1", 1], ["mixed:us:1", 2]]) {
    yield* sql`INSERT INTO outbox_mailboxes ${
      sql.insert({ mailbox, region: "us", depth, next_attempt_at: 1, lease_owner: null, lease_until: null })
    }`
  }

  assert.deepStrictEqual((yield* SqlMigrations.migrate).map(([id]) => id), [7])

  const outbox = yield* SqlOutbox.make()
  assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => [b.mailbox, b.tenant, b.depth]), [
    ["bitbucket:us:1", "m:bitbucket:us:1", 2],
    ["github:us:1", "i:12", 1],
    ["jira:us:1", "i:10", 3],
    ["mixed:us:1", "i:11", 2]
  ])
  const numbered = (mailbox: string) =>
    Effect.map(outbox.head(mailbox, 10), (head) => head.map((p) => [p.id, p.sequence, p.tenant]))
  assert.deepStrictEqual(yield* numbered("jira:us:1"), [[1, 1, "i:10"], [3, 2, "i:10"], [6, 3, "i:10"]])
  assert.deepStrictEqual(yield* numbered("bitbucket:us:1"), [[2, 1, "m:bitbucket:us:1"], [
    5,
    2,
    "m:bitbucket:us:1"
  ]])
  assert.deepStrictEqual(yield* numbered("github:us:1"), [[4, 1, "i:12"]])
  assert.deepStrictEqual(yield* numbered("mixed:us:1"), [[7, 1, "m:mixed:us:1"], [8, 2, "i:11"]])
  // dead letters after the payloads of their mailbox, in id order
  assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => [d.id, d.sequence, d.tenant]), [
    [20, 4, "i:10"],
    [21, 1, "i:13"],
    [22, 5, "i:10"]
  ])
  const counters = yield* sql<{ readonly mailbox: string; readonly last: number | string }>`
    SELECT mailbox, last FROM outbox_sequences ORDER BY mailbox`
  assert.deepStrictEqual(counters.map((c) => [c.mailbox, Number(c.last)]), [
    ["bitbucket:us:1", 2],
    ["github:us:1", 1],
    ["gone:us:1", 1],
    ["jira:us:1", 5],
    ["mixed:us:1", 2]
  ])

  // the store counts on from the back-fill; a replay keeps the number and re-creates the row with its tenant
  const fresh = (mailbox: string, integrationId: number | null): Outbox.NewPayload => ({
    mailbox,
    provider: "jira",
    region: "us" as RegionName,
    integrationId: integrationId as IntegrationId | null,
    method: "POST",
    path: "/y",
    headers: {},
    body: new Uint8Array([1]),
    receivedAt: 100,
    deliveryId: `new-${mailbox}`
  })
  yield* outbox.enqueue([fresh("jira:us:1", 10), fresh("gone:us:1", 13), fresh("new:us:1", null)])
  assert.deepStrictEqual((yield* numbered("jira:us:1")).slice(-1), [[9, 6, "i:10"]])
  assert.deepStrictEqual(yield* numbered("gone:us:1"), [[10, 2, "i:13"]])
  assert.deepStrictEqual(yield* numbered("new:us:1"), [[11, 1, "m:new:us:1"]])
  assert.strictEqual(yield* outbox.replay([21, 22], 200), 2)
  assert.deepStrictEqual(yield* numbered("gone:us:1"), [[10, 2, "i:13"], [12, 1, "i:13"]])
  assert.deepStrictEqual((yield* numbered("jira:us:1")).slice(-1), [[13, 5, "i:10"]])
  // the fair claim reads the back-filled tenants
  const claimed = yield* outbox.claim({ owner: "w", now: 1000, leaseMs: 10, limit: 3, fairShare: 1 })
  assert.deepStrictEqual(claimed.map((c) => c.tenant), ["m:bitbucket:us:1", "i:12", "i:10"])
}).pipe(Effect.scoped)

describe("0007_fair_delivery on SQLite", () => {
  it.scoped("back-fills tenants, sequences and counters", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* backFill.pipe(Effect.provide(SqliteClient.layer({ filename: path.join(dir, "db.sqlite") })))
    }))
})

layer(testDatabase, { timeout: "60 seconds" })("0007_fair_delivery on PostgreSQL", (it) => {
  it.effect("back-fills tenants, sequences and counters", () =>
    Effect.gen(function*() {
      const { url } = yield* TestDatabase
      yield* withClient(url, (sql) => backFill.pipe(Effect.provideService(SqlClient.SqlClient, sql)))
    }))
})
