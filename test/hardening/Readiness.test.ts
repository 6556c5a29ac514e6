// Readiness reflects failed writes (issue #10, item 6): `/readyz` used to stay 200 while the store could read but not
// write (a full disk), because it only ran a read. Now a write that failed makes it 503 until a later write succeeds —
// an enqueue, or the small write `/readyz` itself then tries — so the instance also comes back by itself, without
// traffic. Real failures on real processes:
// - SQLite: the gateway's file-size limit is lowered to one byte (`prlimit --fsize`, RLIMIT_FSIZE: every write past
//   the first byte of a file fails with EFBIG, as writes on a full disk fail with ENOSPC), then raised again;
// - PostgreSQL: the test's own database is made read-only for new sessions (`default_transaction_read_only`, the
//   sessions are ended so that the pool reconnects), then writable again.
import { jiraServerToken } from "@cellgate/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import { killAll, serve, sleep } from "../crash/support.js"
import type { Served, Stub } from "../support/Http.js"
import { call, ensureBuilt, eventually, startStub, tempDir, writeJson } from "../support/Http.js"
import { adminUrl, urlFor, withClient } from "../support/Postgres.js"

const SECRET = "readiness test secret"
const EXTERNAL_ID = "jira.example.org:readiness"
const dbName = `cellgate_ready_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`

const admin = (text: string) => Effect.runPromise(withClient(adminUrl, (sql) => sql.unsafe(text)))
const endSessions = () => admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${dbName}'`)

/** Sets the soft file-size limit of a running process (the hard limit stays unlimited, so it can be raised again). */
const fileSizeLimit = (pid: number, bytes: number | "unlimited") =>
  execFileSync("prlimit", ["--pid", String(pid), `--fsize=${bytes}:unlimited`], { stdio: "pipe" })

let tmp: ReturnType<typeof tempDir>
let region: Stub
let created = false
let token: string

beforeAll(async () => {
  ensureBuilt()
  await admin(`CREATE DATABASE ${dbName}`)
  created = true
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
  token = await jiraServerToken(EXTERNAL_ID, SECRET)
})

afterAll(async () => {
  await killAll()
  await region?.close()
  tmp?.cleanup()
  if (created) await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined)
})

const configFile = (name: string, store: unknown) =>
  writeJson(tmp.dir, name, {
    server: { host: "127.0.0.1" },
    store,
    delivery: { pollIntervalMs: 100 },
    directory: {
      regions: [{ name: "us", url: region.url }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [{ id: 7, provider: "jira_server", externalId: EXTERNAL_ID, metadata: { webhookSecret: SECRET } }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 7 }]
    }
  })

const webhook = (gateway: Served) =>
  call(gateway.url, `/extensions/jira-server/issue-updated/${token}/`, {
    body: JSON.stringify({
      changelog: { id: 1, items: [{ field: "status", fromString: "Open", toString: "Done" }] },
      issue: { id: "10001", key: "APP-1" }
    }),
    headers: { "content-type": "application/json" }
  })

const ready = async (gateway: Served) => (await call(gateway.url, "/readyz")).status

describe("readiness reflects failed writes", () => {
  it("SQLite that cannot write (file size limit): 503 from the failed write on, 200 again once it can", async () => {
    const file = configFile("sqlite.json", { kind: "sqlite", path: Path.join(tmp.dir, "data", "cellgate.db") })
    const gateway = await serve(["--config", file, "--port", "0"])
    const pid = gateway.child.pid!
    expect((await webhook(gateway)).status).toBe(202)
    await region.waitFor(1, 10_000)
    expect(await ready(gateway)).toBe(200)
    await sleep(1_500) // the worker's writes and the volume counter's flush are done

    fileSizeLimit(pid, 1)
    try {
      const refused = await webhook(gateway)
      expect(refused.status).toBe(503)
      expect(JSON.parse(refused.text).error).toBe("store_unavailable")
      expect(refused.headers["retry-after"]).toBe("5")
      // reads still work, but the store cannot write: not ready, and it stays so while it cannot
      for (let i = 0; i < 3; i++) {
        expect(await ready(gateway)).toBe(503)
        await sleep(200)
      }
    } finally {
      fileSizeLimit(pid, "unlimited")
    }
    // the probe of /readyz finds the store writable again: ready without any webhook
    await eventually(async () => ((await ready(gateway)) === 200 ? true : undefined), 10_000)
    expect((await webhook(gateway)).status).toBe(202)
    await region.waitFor(2, 10_000)
    expect(gateway.stdout()).not.toMatch(/\n\s+at /)
    await gateway.stop()
  }, 60_000)

  it(
    "PostgreSQL that cannot write (read-only sessions): 503 from the failed write on, 200 again once it can",
    async () => {
      const file = configFile("pg.json", { kind: "postgres", url: { env: "CELLGATE_READY_PG_URL" } })
      const gateway = await serve(["--config", file, "--port", "0"], { CELLGATE_READY_PG_URL: urlFor(dbName) })
      const before = region.received.length
      expect((await webhook(gateway)).status).toBe(202)
      await region.waitFor(before + 1, 10_000)
      expect(await ready(gateway)).toBe(200)

      await admin(`ALTER DATABASE ${dbName} SET default_transaction_read_only = on`)
      try {
        await endSessions()
        // the pool reconnects: reads answer, writes are refused
        const refused = await eventually(async () => {
          const r = await webhook(gateway)
          return r.status === 503 ? r : undefined
        }, 10_000)
        expect(JSON.parse(refused.text).error).toBe("store_unavailable")
        for (let i = 0; i < 3; i++) {
          expect(await ready(gateway)).toBe(503)
          await sleep(200)
        }
      } finally {
        await admin(`ALTER DATABASE ${dbName} RESET default_transaction_read_only`)
        await endSessions()
      }
      await eventually(async () => ((await ready(gateway)) === 200 ? true : undefined), 10_000)
      expect((await webhook(gateway)).status).toBe(202)
      await region.waitFor(before + 2, 10_000)
      await gateway.stop()
    },
    60_000
  )
})
