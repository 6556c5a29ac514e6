// Crash safety on PostgreSQL, as real processes on a fresh database: one `serve --no-worker` takes a stream of
// sequenced Jira Server webhooks (six integrations, two regions: twelve mailboxes) while two `cellgate worker`
// processes drain a slow region (every answer takes 60 ms, so drains are in progress all the time). One worker is
// killed with SIGKILL while it holds leases; the other takes its mailboxes over once the 2 s leases run out. Every
// 202 must reach each of its mailboxes at least once, in 202 order per mailbox, and no mailbox may ever have two
// requests in flight at the region at once (one drain per mailbox across processes, also across the takeover).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Served } from "../support/Http.js"
import { ensureBuilt, tempDir, writeJson } from "../support/Http.js"
import { adminUrl, urlFor, withClient } from "../support/Postgres.js"
import type { Region, Sent, WorkerProcess } from "./support.js"
import {
  checkDeliveries,
  deadLetters,
  directory,
  integrations,
  kill9,
  killAll,
  mailboxes,
  serve,
  sleep,
  startRegion,
  stream,
  waitEmpty,
  worker
} from "./support.js"

const INTEGRATIONS = 6
const PER_INTEGRATION = 40
const TOTAL = INTEGRATIONS * PER_INTEGRATION
const LEASE_MS = 2000

const dbName = `cellgate_crash_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
const env = { CELLGATE_CRASH_PG_URL: urlFor(dbName) }
let tmp: ReturnType<typeof tempDir>
let region: Region
let created = false

beforeAll(async () => {
  ensureBuilt()
  await Effect.runPromise(withClient(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${dbName}`)))
  created = true
  tmp = tempDir()
  region = await startRegion({ delayMs: 60 })
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

describe("crash safety: PostgreSQL, two workers", () => {
  it(
    "kill -9 of a worker holding leases: the other takes over; every 202 delivered in order, never concurrently",
    async () => {
      const ints = await integrations(INTEGRATIONS)
      const file = writeJson(tmp.dir, "cellgate.json", {
        server: { host: "127.0.0.1" },
        store: { kind: "postgres", url: { env: "CELLGATE_CRASH_PG_URL" } },
        delivery: {
          pollIntervalMs: 100,
          requestTimeoutMs: 3000,
          backoffBaseMs: 100,
          backoffRate: 1.5,
          backoffMaxMs: 400,
          jitter: 0.1,
          maxAttempts: 10_000,
          leaseMs: LEASE_MS,
          concurrency: 8,
          claimBatch: 4
        },
        directory: directory(region.url, ints)
      })
      const gateway: Served = await serve(["--config", file, "--port", "0", "--no-worker"], env)
      // the directory is imported by serve; the workers start on the migrated database
      const workers: Array<WorkerProcess> = [await worker(file, env), await worker(file, env)]

      const sent: Array<Sent> = []
      // set when the stream ends (also on failure), so that the script below never waits forever
      let over = false
      const acked = () => sent.filter((s) => s.status === 202).length
      let victimLeases: Array<string> = []
      let killedAtDelivery = -1

      // 503s for a while (backlog), then at 40% of the 202s find a mailbox leased by worker 0 and SIGKILL it
      const script = (async () => {
        while (!over && acked() < TOTAL * 0.15) await sleep(5)
        region.failing = true
        while (!over && acked() < TOTAL * 0.3) await sleep(5)
        region.failing = false
        while (!over && acked() < TOTAL * 0.4) await sleep(5)
        const marker = `:${workers[0]!.pid}:`
        for (let i = 0; i < 40 && victimLeases.length === 0; i++) {
          victimLeases = (await mailboxes(file, env))
            .filter((m) => m.leasedBy !== null && m.leasedBy.includes(marker))
            .map((m) => m.mailbox)
        }
        killedAtDelivery = region.delivered.length
        await kill9(workers[0]!.child)
      })()

      await stream({
        ints,
        perIntegration: PER_INTEGRATION,
        target: () => gateway.url,
        pauseMs: 10,
        onError: () => Promise.reject(new Error("the gateway is not killed in this test")),
        sent
      }).finally(() => {
        over = true
      })
      await script
      await waitEmpty(file, env, 40_000)

      const result = checkDeliveries(sent, region.delivered)
      expect(victimLeases.length).toBeGreaterThan(0)
      expect(killedAtDelivery).toBeLessThan(region.delivered.length)
      expect(region.failed.length).toBeGreaterThan(0)
      expect(sent.every((s) => s.status === 202)).toBe(true)
      expect(result.acked).toBe(TOTAL)
      expect(result.mailboxes).toBe(INTEGRATIONS * 2)
      expect(result.missing).toEqual([])
      expect(result.disorder).toEqual([])
      expect(region.overlaps).toEqual([])
      expect(await deadLetters(file, env)).toEqual([])
      // the mailboxes the dead worker held were delivered after the kill (by the survivor)
      const after = new Set(region.delivered.slice(killedAtDelivery).map((d) => d.mailbox))
      expect(victimLeases.filter((m) => !after.has(m))).toEqual([])
      console.log(
        `postgres crash: ${sent.length} acked, killed worker held ${victimLeases.length} mailboxes, ` +
          `${region.delivered.length} deliveries (${result.duplicates} duplicates), ${region.failed.length} answered 503`
      )
      workers[1]!.child.kill("SIGTERM")
      await gateway.stop()
    },
    60_000
  )
})
