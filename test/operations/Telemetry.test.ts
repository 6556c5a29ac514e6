// Traces across the outbox (docs/operations.md, "Traces"), through real processes and a local OTLP/HTTP receiver:
// one trace per webhook (ingest → route, commit), each delivery attempt a span whose parent is the ingest span —
// after a restart (SQLite) and in another process (PostgreSQL: `serve --no-worker` + `cellgate worker`) — and the
// W3C `traceparent` sent to the region is the attempt's span. Attributes are bounded values; no secret, no raw path.
// Without `telemetry` nothing is exported and nothing is added to the hop.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
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
import type { OtlpSpan, Receiver } from "./TelemetrySupport.js"
import { startReceiver } from "./TelemetrySupport.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const body = Fs.readFileSync(fixture("jira-server", "sentry_issue_updated_status_minimal.json"))
const webhookPath = `/extensions/jira-server/issue-updated/${vector.valid_token}/`
const MAILBOX = "jira_server:us:10"

const directory = jiraServerDirectory

const delivery = { pollIntervalMs: 100, backoffBaseMs: 100, jitter: 0 }

let tmp: ReturnType<typeof tempDir>
let receiver: Receiver
let region: Stub

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  receiver = await startReceiver()
  region = await startStub(() => ({ status: 200 }))
})

afterAll(async () => {
  await receiver?.close()
  await region?.close()
  tmp?.cleanup()
})

const byName = (spans: ReadonlyArray<OtlpSpan>, name: string) => spans.filter((s) => s.name === name)

/** The webhook's spans: its root `cellgate.webhook` and the children of it. */
const ingestOf = (spans: ReadonlyArray<OtlpSpan>) => {
  const roots = byName(spans, "cellgate.webhook")
  expect(roots).toHaveLength(1)
  const root = roots[0]!
  expect(root.parentSpanId).toBeUndefined()
  return root
}

const expectNoSecret = () => {
  const all = receiver.bodies.join("\n")
  expect(all).not.toContain(vector.webhook_secret)
  expect(all).not.toContain(vector.valid_token)
}

describe("traces (telemetry)", () => {
  it("SQLite: ingest and commit traced; after a restart each delivery attempt is a child of the ingest span", async () => {
    receiver.bodies.length = 0
    region.received.length = 0
    let answers = 0
    region.answer = () => ({ status: ++answers === 1 ? 503 : 200 })
    const file = writeJson(tmp.dir, "sqlite.json", {
      store: { kind: "sqlite", path: Path.join(tmp.dir, "traces.db") },
      delivery,
      telemetry: { otlpEndpoint: receiver.url },
      directory: directory(region.url)
    })

    // 1. the gateway only: the webhook is stored; its spans are exported when the process stops
    const gateway = await serveCli(["--config", file, "--port", "0", "--no-worker"])
    try {
      const reply = await call(gateway.url, webhookPath, { body, headers: { "content-type": "application/json" } })
      expect(reply.status).toBe(202)
    } finally {
      expect((await gateway.stop()).code).toBe(0)
    }
    const ingest = receiver.spans()
    const root = ingestOf(ingest)
    expect(root.service).toBe("cellgate")
    expect(root.kind).toBe(2) // server
    expect(root.attributes).toMatchObject({
      provider: "jira_server",
      decision: "enqueue",
      status: 202,
      mailbox: [MAILBOX],
      region: ["us"],
      "http.request.method": "POST"
    })
    // the redacted path, never the token in it
    expect(String(root.attributes["url.path"])).not.toContain(vector.valid_token)
    expect(String(root.attributes["url.path"])).toContain("/extensions/jira-server/issue-updated/")
    for (const name of ["cellgate.route", "cellgate.commit"]) {
      const [span] = byName(ingest, name)
      expect(span, name).toBeDefined()
      expect(span!.traceId).toBe(root.traceId)
      expect(span!.parentSpanId).toBe(root.spanId)
    }
    expect(byName(ingest, "cellgate.commit")[0]!.attributes).toMatchObject({ mailbox: [MAILBOX], region: ["us"] })
    expect(byName(ingest, "cellgate.delivery")).toHaveLength(0)

    // 2. a new process (the worker built into serve) delivers: 503, then 200 after the backoff
    receiver.bodies.length = 0
    const restarted = await serveCli(["--config", file, "--port", "0"])
    try {
      await region.waitFor(2, 15_000)
    } finally {
      expect((await restarted.stop()).code).toBe(0)
    }
    const attempts = byName(receiver.spans(), "cellgate.delivery")
    expect(attempts).toHaveLength(2)
    for (const [i, span] of attempts.entries()) {
      expect(span.traceId).toBe(root.traceId)
      expect(span.parentSpanId).toBe(root.spanId)
      expect(span.kind).toBe(3) // client
      expect(span.attributes).toMatchObject({
        provider: "jira_server",
        mailbox: MAILBOX,
        region: "us",
        attempt: i + 1,
        status: i === 0 ? 503 : 200,
        decision: i === 0 ? "Retry" : "Complete"
      })
      // the region got the attempt's own span as its parent
      expect(region.received[i]!.headers["traceparent"]).toBe(`00-${root.traceId}-${span.spanId}-01`)
    }
    // one trace per webhook: no other root was exported by the worker (drain loop, SQL, gauges)
    expect(receiver.spans().filter((s) => s.parentSpanId === undefined)).toHaveLength(0)
    expectNoSecret()
  })

  it("PostgreSQL: the worker process's delivery span joins the trace of the gateway process", async () => {
    receiver.bodies.length = 0
    region.received.length = 0
    region.answer = () => ({ status: 200 })
    const db = createDatabase("cellgate_traces")
    try {
      const env = { TEST_PG_URL: dbUrl(db) }
      const config = (serviceName: string) => ({
        store: { kind: "postgres", url: { env: "TEST_PG_URL" } },
        delivery,
        telemetry: { otlpEndpoint: `${receiver.url}/`, serviceName },
        directory: directory(region.url)
      })
      const gatewayFile = writeJson(tmp.dir, "pg-gateway.json", config("cellgate-gateway"))
      const workerFile = writeJson(tmp.dir, "pg-worker.json", { ...config("cellgate-worker"), directory: undefined })
      const gateway = await serveCli(["--config", gatewayFile, "--port", "0", "--no-worker"], { env })
      try {
        const worker = await startWorker(["--config", workerFile, "--metrics-port", "0"], env)
        try {
          const reply = await call(gateway.url, webhookPath, { body })
          expect(reply.status).toBe(202)
          await region.waitFor(1, 15_000)
        } finally {
          expect(await worker.stop()).toBe(0)
        }
      } finally {
        expect((await gateway.stop()).code).toBe(0)
      }
      const spans = receiver.spans()
      const root = ingestOf(spans)
      expect(root.service).toBe("cellgate-gateway")
      const [attempt, ...more] = byName(spans, "cellgate.delivery")
      expect(more).toHaveLength(0)
      expect(attempt!.service).toBe("cellgate-worker")
      expect(attempt!.traceId).toBe(root.traceId)
      expect(attempt!.parentSpanId).toBe(root.spanId)
      expect(attempt!.attributes).toMatchObject({ status: 200, region: "us", mailbox: MAILBOX })
      expect(region.received[0]!.headers["traceparent"]).toBe(`00-${root.traceId}-${attempt!.spanId}-01`)
      expectNoSecret()
    } finally {
      dropDatabase(db)
    }
  })

  it("sampleRatio 0 exports nothing; without telemetry the sender's traceparent passes through untouched", async () => {
    const senderParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for (const telemetry of [{ otlpEndpoint: receiver.url, sampleRatio: 0 }, undefined]) {
      receiver.bodies.length = 0
      region.received.length = 0
      const file = writeJson(tmp.dir, "memory.json", {
        store: { kind: "memory", ephemeral: true },
        delivery,
        ...(telemetry === undefined ? {} : { telemetry }),
        directory: directory(region.url)
      })
      const served = await serveCli(["--config", file, "--port", "0"])
      try {
        const reply = await call(served.url, webhookPath, { body, headers: { traceparent: senderParent } })
        expect(reply.status).toBe(202)
        await region.waitFor(1, 10_000)
      } finally {
        expect((await served.stop()).code).toBe(0)
      }
      // not traced: the hop carries what the sender sent, and nothing was exported
      expect(region.received[0]!.headers["traceparent"]).toBe(senderParent)
      expect(receiver.bodies).toHaveLength(0)
    }
  })

  it("a bad telemetry section is a configuration error naming the key", async () => {
    const file = writeJson(tmp.dir, "bad.json", {
      store: { kind: "memory", ephemeral: true },
      telemetry: { otlpEndpoint: "not a url", sampleRatio: 2 }
    })
    const run = await runCli(["serve", "--config", file, "--port", "0"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("telemetry.otlpEndpoint")
    expect(run.stderr).toContain("telemetry.sampleRatio")
  })
})
