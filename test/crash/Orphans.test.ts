// The orphan sweep as the worker runs it: a payload whose mailbox row was deleted behind cellgate's back (what the
// mailbox-row race of docs/outbox.md would leave) is invisible to claims; the worker's sweep at start recreates the
// row, logs a warning with the count, counts it in `cellgate_outbox_orphans_repaired_total`, and the payload is
// delivered. SQLite through `serve` (built-in worker), PostgreSQL through `cellgate worker`.
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Path from "node:path"
import type { Stub } from "../support/Http.js"
import { call, ensureBuilt, logLines, startStub, tempDir, writeJson } from "../support/Http.js"
import { adminUrl, urlFor, withClient } from "../support/Postgres.js"
import type { Integration } from "./support.js"
import { directory, integrations, killAll, mailboxes, serve, waitEmpty, worker } from "./support.js"

const dbName = `cellgate_orphans_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
const env = { CELLGATE_ORPHANS_PG_URL: urlFor(dbName) }
let tmp: ReturnType<typeof tempDir>
let region: Stub
let ints: Array<Integration>
let created = false

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
  ints = await integrations(1)
})

afterAll(async () => {
  await killAll()
  await region?.close()
  tmp?.cleanup()
  if (created) {
    await Effect.runPromise(
      withClient(adminUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)).pipe(Effect.ignore)
    )
  }
})

const ORPHAN = "jira_server:eu:100"
const delivery = { pollIntervalMs: 100 }

const post = async (url: string, seq: number) => {
  const reply = await call(url, `/extensions/jira-server/issue-updated/${ints[0]!.token}/`, {
    body: JSON.stringify({ seq, changelog: { id: seq }, issue: { id: "1" } })
  })
  expect(reply.status).toBe(202)
}

const repairedLog = (stdout: string) =>
  logLines(stdout).filter((l) => l.level === "warn" && String(l.message).includes("orphans repaired"))

describe("orphan sweep", () => {
  it("SQLite: serve's worker repairs a payload without a mailbox row at start, warns, counts, delivers", async () => {
    region.received.length = 0
    const path = Path.join(tmp.dir, "orphans.db")
    const file = writeJson(tmp.dir, "sqlite.json", {
      store: { kind: "sqlite", path },
      delivery,
      directory: directory(region.url, ints)
    })
    const first = await serve(["--config", file, "--port", "0", "--no-worker"])
    for (const seq of [1, 2, 3]) await post(first.url, seq)
    expect((await first.stop()).code).toBe(0)

    await Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM outbox_mailboxes WHERE mailbox = ${ORPHAN}`).pipe(
        Effect.provide(SqliteClient.layer({ filename: path })),
        Effect.scoped
      )
    )
    expect((await mailboxes(file)).map((m) => m.mailbox)).toEqual(["jira_server:us:100"])

    const second = await serve(["--config", file, "--port", "0"])
    try {
      await region.waitFor(6, 15_000)
      await waitEmpty(file, {}, 15_000)
      const seqs = region.received
        .filter((r) => r.headers["x-cellgate-mailbox"] === ORPHAN)
        .map((r) => (JSON.parse(r.body.toString("utf8")) as { seq: number }).seq)
      expect(seqs).toEqual([1, 2, 3])
      expect(repairedLog(second.stdout())).toMatchObject([{ repaired: 1 }])
      const metrics = await call(second.url, "/metrics")
      expect(metrics.text).toMatch(/^cellgate_outbox_orphans_repaired_total(\{\})? 1$/m)
    } finally {
      await second.stop()
    }
  })

  it("PostgreSQL: cellgate worker repairs it at start", async () => {
    region.received.length = 0
    await Effect.runPromise(withClient(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${dbName}`)))
    created = true
    const file = writeJson(tmp.dir, "pg.json", {
      store: { kind: "postgres", url: { env: "CELLGATE_ORPHANS_PG_URL" } },
      delivery,
      directory: directory(region.url, ints)
    })
    const gateway = await serve(["--config", file, "--port", "0", "--no-worker"], env)
    try {
      for (const seq of [1, 2]) await post(gateway.url, seq)
      await Effect.runPromise(
        withClient(env.CELLGATE_ORPHANS_PG_URL, (sql) => sql`DELETE FROM outbox_mailboxes WHERE mailbox = ${ORPHAN}`)
      )
      const w = await worker(file, env)
      await region.waitFor(4, 15_000)
      await waitEmpty(file, env, 15_000)
      expect(region.received.filter((r) => r.headers["x-cellgate-mailbox"] === ORPHAN)).toHaveLength(2)
      expect(repairedLog(w.stdout())).toMatchObject([{ repaired: 1 }])
      w.child.kill("SIGTERM")
    } finally {
      await gateway.stop()
    }
  })
})
