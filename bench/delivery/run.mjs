// Delivery drain throughput: how fast cellgate's delivery worker empties a backlog of payloads over 100 mailboxes
// into a local region stub that answers 200 at once, on SQLite (`cellgate serve`, built-in worker) and PostgreSQL
// (1 and 2 `cellgate worker` processes), against a plain loop that POSTs the same payloads with the same HTTP client
// (`HttpRegionClient` of packages/adapters/dist) at the same concurrency — all in the same run.
//
//   npx tsc -b && node bench/delivery/run.mjs [--quick] [--payloads N] [--no-postgres]
//
// The stub runs in its own process and measures every rate the same way: (deliveries − 1) / (last − first answer),
// so process start-up and migrations are not counted. The backlog is written before the worker starts (the store's
// own `enqueue`). Workers run with the default delivery settings (concurrency 16 mailboxes per worker). PostgreSQL:
// a throw-away database `cellgate_bench_<random>` on the server of DATABASE_URL
// (default postgres://postgres@127.0.0.1:5432/test), dropped at the end.
import { Effect, ManagedRuntime, Schema } from "effect"
import { fork, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { HttpRegionClient } from "../../packages/adapters/dist/index.js"
import * as Postgres from "../../packages/adapters/dist/Postgres.js"
import * as Sqlite from "../../packages/adapters/dist/Sqlite.js"
import { Directory, DirectoryStore, Outbox, RegionClient } from "../../packages/core/dist/index.js"

const self = fileURLToPath(import.meta.url)
const root = path.resolve(path.dirname(self), "../..")
const bin = path.join(root, "packages/http/bin/cellgate.js")
const args = process.argv.slice(2)

// -- the region stub (its own process) -----------------------------------------------------------------------------

if (args[0] === "--stub") {
  let target = Infinity
  let count = 0
  let first = 0
  let last = 0
  const server = http.createServer((req, res) => {
    req.on("data", () => {})
    req.on("end", () => {
      res.writeHead(200, { "content-length": "0" })
      res.end()
      const now = performance.now()
      if (count === 0) first = now
      last = now
      count++
      if (count === target) process.send({ done: true, count, seconds: (last - first) / 1000 })
    })
  })
  server.keepAliveTimeout = 30_000
  process.on("message", (m) => {
    if (m.arm !== undefined) {
      target = m.arm
      count = 0
      process.send({ armed: true })
    }
    if (m.exit) server.close(() => process.exit(0))
  })
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }))
} else {
  await main()
}

// -- the bench -----------------------------------------------------------------------------------------------------

async function main() {
  const quick = args.includes("--quick")
  const payloads = Number(args[args.indexOf("--payloads") + 1] || 0) || (quick ? 2_000 : 10_000)
  const withPostgres = !args.includes("--no-postgres")
  const MAILBOXES = 100
  const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

  const children = new Set()
  const cleanup = () => {
    for (const c of children) c.kill("SIGKILL")
  }
  process.on("exit", cleanup)
  process.on("SIGINT", () => process.exit(130))
  process.on("SIGTERM", () => process.exit(143))

  // stub
  const stub = fork(self, ["--stub"], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
  children.add(stub)
  const messages = []
  let waiter = null
  stub.on("message", (m) => {
    messages.push(m)
    if (waiter) waiter()
  })
  const nextMessage = async (key, timeoutMs = 600_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = messages.findIndex((m) => m[key] !== undefined)
      if (i !== -1) return messages.splice(i, 1)[0]
      if (Date.now() > deadline) throw new Error(`stub: no ${key} in ${timeoutMs} ms`)
      await new Promise((r) => {
        waiter = r
        setTimeout(r, 200)
      })
    }
  }
  const { port } = await nextMessage("port")
  const regionUrl = `http://127.0.0.1:${port}`
  const arm = async (n) => {
    stub.send({ arm: n })
    await nextMessage("armed")
  }

  const body = new Uint8Array(Buffer.from(JSON.stringify({
    changelog: { id: 1, items: [{ field: "status", fromString: "Open", toString: "Done" }] },
    issue: { id: "10001", key: "APP-1", fields: { summary: "x".repeat(900) } }
  })))
  const headers = { "content-type": "application/json", "user-agent": "Atlassian HttpClient 3.0.4" }
  const requestPath = "/extensions/jira-server/issue-updated/token/"
  const backlog = (n) =>
    Array.from({ length: n }, (_, i) => ({
      mailbox: `jira_server:us:${i % MAILBOXES}`,
      provider: "jira_server",
      region: "us",
      integrationId: 1 + (i % MAILBOXES),
      method: "POST",
      path: requestPath,
      headers,
      body,
      receivedAt: Date.now(),
      deliveryId: randomUUID()
    }))
  const directory = Schema.decodeUnknownSync(Directory)({ regions: [{ name: "us", url: regionUrl }] })

  /** Writes the directory and the backlog through the store's own layer, then closes it. */
  const preload = async (layer) => {
    const runtime = ManagedRuntime.make(layer)
    try {
      await runtime.runPromise(Effect.gen(function*() {
        yield* (yield* DirectoryStore.DirectoryStore).importDirectory(directory)
        const outbox = yield* Outbox.Outbox
        const all = backlog(payloads)
        for (let i = 0; i < all.length; i += 500) yield* outbox.enqueue(all.slice(i, i + 500))
      }))
    } finally {
      await runtime.dispose()
    }
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cellgate-bench-"))
  const writeConfig = (name, store) => {
    const file = path.join(tmp, name)
    fs.writeFileSync(file, JSON.stringify({ server: { host: "127.0.0.1" }, store }))
    return file
  }

  const start = (argv, env = {}) => {
    const child = spawn(process.execPath, [bin, ...argv], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"]
    })
    children.add(child)
    child.on("exit", () => children.delete(child))
    return child
  }
  const stop = (child) =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000)
      child.on("exit", () => {
        clearTimeout(t)
        resolve()
      })
      child.kill("SIGTERM")
    })

  /** Starts `processes` (argv lists), waits until the stub answered every payload, stops them. */
  const drain = async (processes, env) => {
    await arm(payloads)
    const started = processes.map((argv) => start(argv, env))
    try {
      const { seconds } = await nextMessage("done", 10 * 60_000)
      return payloads / seconds
    } finally {
      await Promise.all(started.map(stop))
    }
  }

  /** The plain loop: the same payloads, `HttpRegionClient`, `concurrency` requests in flight. */
  const baseline = async (concurrency) => {
    const runtime = ManagedRuntime.make(HttpRegionClient.layer)
    try {
      const client = await runtime.runPromise(RegionClient.RegionClient)
      const region = directory.regions[0]
      const all = backlog(payloads)
      await arm(payloads)
      await runtime.runPromise(
        Effect.forEach(
          all,
          (p) =>
            client.send(region, { method: p.method, path: p.path, headers: p.headers, body: p.body }, {
              timeoutMs: 12_000
            }),
          { concurrency, discard: true }
        )
      )
      const { seconds } = await nextMessage("done")
      return payloads / seconds
    } finally {
      await runtime.dispose()
    }
  }

  const rows = []
  const row = (name, rate, base, concurrency) => rows.push({ name, rate, base, concurrency })

  try {
    // warm the stub and the client once
    await baseline(16)
    const base16 = await baseline(16)
    const base32 = await baseline(32)

    // SQLite: serve with its built-in worker (synchronous FULL, the default, and NORMAL)
    for (const synchronous of ["full", "normal"]) {
      const dbPath = path.join(tmp, `bench-${synchronous}.db`)
      await preload(Sqlite.layer({ path: dbPath }))
      const file = writeConfig(`sqlite-${synchronous}.json`, { kind: "sqlite", path: dbPath, synchronous })
      const rate = await drain([["serve", "--config", file, "--port", "0"]])
      row(`SQLite ${synchronous.toUpperCase()}, serve (1 worker)`, rate, base16, 16)
    }

    if (withPostgres) {
      const admin = new pg.Client({ connectionString: adminUrl })
      await admin.connect()
      try {
        for (const workers of [1, 2]) {
          const name = `cellgate_bench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
          await admin.query(`CREATE DATABASE ${name}`)
          try {
            const url = new URL(adminUrl)
            url.pathname = `/${name}`
            await preload(Postgres.layer({ url: url.toString() }))
            const file = writeConfig(`pg-${workers}.json`, { kind: "postgres", url: url.toString() })
            const argv = Array.from({ length: workers }, () => ["worker", "--config", file])
            row(
              `PostgreSQL, ${workers} worker${workers > 1 ? "s" : ""}`,
              await drain(argv),
              workers === 1 ? base16 : base32,
              16 * workers
            )
          } finally {
            await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
          }
        }
      } finally {
        await admin.end()
      }
    }
  } finally {
    stub.send({ exit: true })
    fs.rmSync(tmp, { recursive: true, force: true })
  }

  const fmt = (n) => Math.round(n).toLocaleString("en-US")
  console.log(
    `\nDelivery drain: ${payloads} payloads over ${MAILBOXES} mailboxes, region stub answering 200 ` +
      `(${os.cpus().length} CPUs, node ${process.version})\n`
  )
  console.log("| store | in flight | cellgate deliveries/s | plain loop deliveries/s | ratio |")
  console.log("|---|---|---|---|---|")
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.concurrency} | ${fmt(r.rate)} | ${fmt(r.base)} | ${(r.rate / r.base).toFixed(2)} |`)
  }
}
