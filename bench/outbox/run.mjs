// Outbox enqueue throughput: cellgate's SQL stores (group commit) against the raw driver inserting one row per
// transaction, with 1, 16 and 64 concurrent writers, on SQLite (synchronous FULL and NORMAL) and PostgreSQL.
//
//   npx tsc -b && node bench/outbox/run.mjs [--seconds 1.5] [--no-postgres]
//
// PostgreSQL: a throw-away database `cellgate_bench_<random>` on the server of DATABASE_URL
// (default postgres://postgres@127.0.0.1:5432/test), dropped at the end.
import Database from "better-sqlite3"
import { Effect, ManagedRuntime } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import * as Postgres from "../../packages/adapters/dist/Postgres.js"
import * as Sqlite from "../../packages/adapters/dist/Sqlite.js"
import { Outbox } from "../../packages/core/dist/index.js"

const args = process.argv.slice(2)
const seconds = Number(args[args.indexOf("--seconds") + 1] || 0) || 1.5
const withPostgres = !args.includes("--no-postgres")
const concurrencies = [1, 16, 64]
const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const body = new Uint8Array(
  Buffer.from(JSON.stringify({ issue: { id: "10001", fields: { summary: "x".repeat(900) } } }))
)
const headers = { "content-type": "application/json", "user-agent": "bench" }
let seq = 0
const newPayload = (writer) => ({
  mailbox: `jira_server:us:${writer % 32}`,
  provider: "jira_server",
  region: "us",
  integrationId: 1,
  method: "POST",
  path: "/extensions/jira-server/issue-updated/token/",
  headers,
  body,
  receivedAt: Date.now(),
  deliveryId: `d-${++seq}`
})

/** Enqueues with `c` concurrent writers for `seconds`; returns payloads per second and transactions used. */
const cellgate = async (layer, c, commits) => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const outbox = await runtime.runPromise(Outbox.Outbox)
    await runtime.runPromise(outbox.enqueue([newPayload(0)])) // warm up
    commits.count = 0
    const deadline = Date.now() + seconds * 1000
    let done = 0
    const writer = (w) =>
      Effect.gen(function*() {
        while (Date.now() < deadline) {
          yield* outbox.enqueue([newPayload(w)])
          done++
        }
      })
    const start = Date.now()
    await runtime.runPromise(Effect.all(Array.from({ length: c }, (_, w) => writer(w)), { concurrency: "unbounded" }))
    const elapsed = (Date.now() - start) / 1000
    return { rate: done / elapsed, txPerSec: commits.count / elapsed }
  } finally {
    await runtime.dispose()
  }
}

const rawSqlite = (file, synchronous) => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.pragma(`synchronous = ${synchronous}`)
  db.exec(`CREATE TABLE IF NOT EXISTS raw_payloads (id INTEGER PRIMARY KEY AUTOINCREMENT, mailbox TEXT NOT NULL,
    headers TEXT NOT NULL, body BLOB NOT NULL, received_at INTEGER NOT NULL, delivery_id TEXT NOT NULL)`)
  const insert = db.prepare(
    "INSERT INTO raw_payloads (mailbox, headers, body, received_at, delivery_id) VALUES (?, ?, ?, ?, ?)"
  )
  const one = db.transaction((p) =>
    insert.run(p.mailbox, JSON.stringify(p.headers), Buffer.from(p.body), p.receivedAt, p.deliveryId)
  )
  const deadline = Date.now() + seconds * 1000
  const start = Date.now()
  let done = 0
  while (Date.now() < deadline) {
    one(newPayload(done))
    done++
  }
  db.close()
  return done / ((Date.now() - start) / 1000)
}

const rawPostgres = async (url, c) => {
  const pool = new pg.Pool({ connectionString: url, max: c })
  pool.on("error", () => {})
  await pool.query(`CREATE TABLE IF NOT EXISTS raw_payloads (id bigserial PRIMARY KEY, mailbox text NOT NULL,
    headers text NOT NULL, body bytea NOT NULL, received_at bigint NOT NULL, delivery_id text NOT NULL)`)
  const deadline = Date.now() + seconds * 1000
  const start = Date.now()
  let done = 0
  const writer = async (w) => {
    const client = await pool.connect()
    try {
      while (Date.now() < deadline) {
        const p = newPayload(w)
        await client.query("BEGIN")
        await client.query(
          "INSERT INTO raw_payloads (mailbox, headers, body, received_at, delivery_id) VALUES ($1, $2, $3, $4, $5)",
          [p.mailbox, JSON.stringify(p.headers), Buffer.from(p.body), p.receivedAt, p.deliveryId]
        )
        await client.query("COMMIT")
        done++
      }
    } finally {
      client.release()
    }
  }
  await Promise.all(Array.from({ length: c }, (_, w) => writer(w)))
  const rate = done / ((Date.now() - start) / 1000)
  await pool.end()
  return rate
}

const rows = []
const fmt = (n) => n.toFixed(0).padStart(8)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cellgate-bench-"))
try {
  for (const synchronous of ["full", "normal"]) {
    const raw = rawSqlite(path.join(dir, `raw-${synchronous}.db`), synchronous.toUpperCase())
    for (const c of concurrencies) {
      const commits = { count: 0 }
      const layer = Sqlite.layer({
        path: path.join(dir, `cellgate-${synchronous}-${c}.db`),
        synchronous,
        onCommit: () => commits.count++
      })
      const r = await cellgate(layer, c, commits)
      rows.push({ store: `sqlite ${synchronous}`, c, ...r, raw })
    }
  }

  if (withPostgres) {
    const name = `cellgate_bench_${Date.now().toString(36)}`
    const admin = new pg.Client({ connectionString: adminUrl })
    await admin.connect().catch((e) => {
      console.error(
        `PostgreSQL is not reachable at ${adminUrl} (${e.message}): start it with ` +
          "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or pass --no-postgres"
      )
      process.exit(1)
    })
    await admin.query(`CREATE DATABASE ${name}`)
    const url = new URL(adminUrl)
    url.pathname = `/${name}`
    try {
      for (const c of concurrencies) {
        const commits = { count: 0 }
        const layer = Postgres.layer({ url: url.toString(), onCommit: () => commits.count++ })
        const r = await cellgate(layer, c, commits)
        const raw = await rawPostgres(url.toString(), c)
        rows.push({ store: "postgres", c, ...r, raw })
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

console.log(`outbox enqueue, ${seconds}s per cell, 1 payload (~1 KiB) per enqueue, Node ${process.version}`)
console.log("store          writers  cellgate/s   tx/s   raw 1-row-tx/s   ratio")
for (const r of rows) {
  console.log(
    `${r.store.padEnd(14)} ${String(r.c).padStart(7)} ${fmt(r.rate)}    ${fmt(r.txPerSec)} ${fmt(r.raw)}        ${
      (r.rate / r.raw).toFixed(2)
    }x`
  )
}
