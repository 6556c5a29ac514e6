// `cellgate worker --metrics-port N` (docs/operations.md, "Scraping the worker"): in the PostgreSQL layout the
// delivery metrics live in the worker process, which serves /healthz, /readyz and /metrics; the runtime's own
// `effect_fiber_*` series are typed correctly (`effect_fiber_active` a gauge) or left out (`effect_fiber_failures`).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Stub } from "../support/Http.js"
import {
  call,
  ensureBuilt,
  fixture,
  readFixture,
  runCli,
  serveCli,
  startStub,
  tempDir,
  writeJson
} from "../support/Http.js"
import { createDatabase, dbUrl, dropDatabase, jiraServerDirectory, startWorker } from "../support/Processes.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const body = Fs.readFileSync(fixture("jira-server", "sentry_issue_updated_status_minimal.json"))

let tmp: ReturnType<typeof tempDir>
let region: Stub
let db: string
let file: string
let env: Record<string, string>

beforeAll(async () => {
  ensureBuilt()
  db = createDatabase("cellgate_worker")
  env = { TEST_PG_URL: dbUrl(db) }
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
  file = writeJson(tmp.dir, "pg.json", {
    store: { kind: "postgres", url: { env: "TEST_PG_URL" } },
    delivery: { pollIntervalMs: 100 },
    directory: jiraServerDirectory(region.url)
  })
})

afterAll(async () => {
  await region?.close()
  tmp?.cleanup()
  if (db !== undefined) dropDatabase(db)
})

/** The sample lines of one metric (`name` or `name{…}`), without `# TYPE`. */
const samples = (text: string, name: string) =>
  text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))

describe("cellgate worker --metrics-port", () => {
  it("the worker serves /healthz, /readyz and /metrics with the delivery metrics; the gateway has none of them", async () => {
    const gateway = await serveCli(["--config", file, "--port", "0", "--no-worker"], { env })
    try {
      const worker = await startWorker(["--config", file, "--metrics-port", "0"], env)
      try {
        expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        const url = worker.metricsUrl!
        expect(await call(url, "/healthz")).toMatchObject({ status: 200, text: "ok" })
        expect(await call(url, "/readyz")).toMatchObject({ status: 200, text: "ready" })
        expect((await call(url, "/nope")).status).toBe(404)
        expect((await call(url, "/metrics", { method: "POST", body: "x" })).status).toBe(405)

        const before = await call(url, "/metrics")
        expect(before.status).toBe(200)
        expect(before.headers["content-type"]).toContain("text/plain; version=0.0.4")
        // the orphan-sweep counter the docs say to alert on is there from the start, at 0
        expect(samples(before.text, "cellgate_outbox_orphans_repaired_total")).toEqual([
          "cellgate_outbox_orphans_repaired_total 0"
        ])

        const reply = await call(gateway.url, `/extensions/jira-server/issue-updated/${vector.valid_token}/`, { body })
        expect(reply.status).toBe(202)
        await region.waitFor(1, 15_000)
        // the delivery is counted once its `complete` is written; the mailbox is released (depth 0) just after
        let text = ""
        for (let i = 0; i < 50; i++) {
          text = (await call(url, "/metrics")).text
          if (
            samples(text, "cellgate_deliveries_total").length > 0 &&
            samples(text, "cellgate_outbox_depth").join() === "cellgate_outbox_depth{region=\"us\"} 0"
          ) break
          await new Promise((r) => setTimeout(r, 100))
        }
        expect(samples(text, "cellgate_deliveries_total")).toEqual([
          "cellgate_deliveries_total{outcome=\"ok\",region=\"us\"} 1"
        ])
        expect(samples(text, "cellgate_delivery_seconds_count")).toEqual([
          "cellgate_delivery_seconds_count{region=\"us\"} 1"
        ])
        expect(samples(text, "cellgate_outbox_depth")).toEqual(["cellgate_outbox_depth{region=\"us\"} 0"])
        // Effect's runtime series: active fibers go up and down (a gauge); failures of fibers are not exposed
        expect(text).toContain("# TYPE effect_fiber_active gauge\n")
        expect(text).not.toContain("effect_fiber_failures")
        expect(text).not.toContain("effect_fiber_active counter")
        expect(text).not.toContain(vector.webhook_secret)

        // the gateway process received the webhook but delivered nothing: no delivery sample there
        const gatewayMetrics = (await call(gateway.url, "/metrics")).text
        expect(samples(gatewayMetrics, "cellgate_deliveries_total")).toEqual([])
        expect(gatewayMetrics).toContain("# TYPE effect_fiber_active gauge\n")
        expect(gatewayMetrics).not.toContain("effect_fiber_failures")
      } finally {
        expect(await worker.stop()).toBe(0)
      }
      expect(worker.stdout()).not.toContain(vector.webhook_secret)
    } finally {
      expect((await gateway.stop()).code).toBe(0)
    }
  })

  it("without --metrics-port the worker serves nothing and prints no metrics line", async () => {
    const worker = await startWorker(["--config", file], env)
    try {
      expect(worker.metricsUrl).toBeUndefined()
      expect(worker.stdout()).not.toContain("cellgate worker metrics on")
    } finally {
      expect(await worker.stop()).toBe(0)
    }
  })

  it("a metrics port that is taken is a clear failure (exit 1); a port that is not a number is a usage error", async () => {
    const taken = Http.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    try {
      const port = (taken.address() as AddressInfo).port
      const busy = await runCli(["worker", "--config", file, "--metrics-port", String(port)], { env })
      expect(busy.code).toBe(1)
      expect(busy.stderr).toContain("EADDRINUSE")
      const bad = await runCli(["worker", "--config", file, "--metrics-port", "abc"], { env })
      expect(bad.code).toBe(2)
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()))
    }
  })
})
