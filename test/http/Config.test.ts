// The configuration schema (defaults, secrets from the environment, field paths in errors), the Prometheus encoder
// and log redaction, as plain functions.
import { Config, Logging, Prometheus } from "@cellgate/http"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Metric, MetricBoundaries, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

const decode = (raw: unknown, env: Record<string, string> = {}) => Config.decode(raw, { env })
/** A valid region secret: `whsec_` + base64 of at least 24 bytes. */
const REGION_SECRET = "whsec_" + Buffer.from("the us region signing key").toString("base64")

describe("Config", () => {
  it("every key is optional, with the defaults of docs/configuration.md", () => {
    const c = Either.getOrThrow(decode({}))
    expect(c.server).toEqual({ host: "127.0.0.1", port: 8080, maxBodyBytes: 1_048_576, readTimeoutMs: 10_000 })
    expect(c.store).toEqual({ kind: "sqlite", path: "./data/cellgate.db", synchronous: "full" })
    expect(c.control).toEqual({})
    expect(c.delivery).toEqual({
      pollIntervalMs: 500,
      requestTimeoutMs: 12_000,
      maxAttempts: 10,
      backoffBaseMs: 180_000,
      backoffRate: 1.4,
      backoffMaxMs: 3_600_000,
      jitter: 0.1,
      retryAfterMaxMs: 3_600_000,
      maxAgeMs: 259_200_000,
      skipOnFailureProviders: ["github"],
      concurrency: 16,
      leaseMs: 30_000,
      claimBatch: 32,
      maxAnswerBytes: 1_048_576,
      fairShare: 2,
      drainSlice: 32,
      regionConcurrency: 4,
      adaptive: true
    })
    expect(c.providers).toEqual({})
    expect(c.directory).toBeUndefined()
  })

  it("resolves { env } secrets and keeps them Redacted", () => {
    const c = Either.getOrThrow(decode({
      store: { kind: "postgres", url: { env: "PG" } },
      providers: { github: { webhookSecret: { env: "GH" } } },
      directory: {
        regions: [{ name: "us", url: "http://us.test", secret: { env: "REGION" } }],
        integrations: [{ id: 1, provider: "jira_server", externalId: "x", metadata: { webhookSecret: { env: "JS" } } }]
      }
    }, { PG: "postgres://u:p@h/db", GH: "gh-secret", REGION: REGION_SECRET, JS: "jira-secret" }))
    expect(c.store.kind === "postgres" && Redacted.value(c.store.url)).toBe("postgres://u:p@h/db")
    expect(Redacted.value(c.providers.github!.webhookSecret!)).toBe("gh-secret")
    expect(Redacted.value(c.directory!.regions[0]!.secret!)).toBe(REGION_SECRET)
    expect(Redacted.value(c.directory!.integrations[0]!.metadata.webhookSecret!)).toBe("jira-secret")
    expect(String(c.directory!.integrations[0]!.metadata.webhookSecret)).not.toContain("jira-secret")
  })

  it("names the field of every problem", () => {
    const e = decode({
      server: { port: 70000 },
      store: { kind: "memory" },
      directory: { organizations: [{ id: -1, slug: "x", region: "us" }] }
    })
    expect(Either.isLeft(e)).toBe(true)
    const paths = Either.isLeft(e) ? e.left.issues.map((i) => i.path) : []
    expect(paths).toEqual(expect.arrayContaining(["server.port", "store.ephemeral", "directory.organizations.0.id"]))
    expect(paths.every((p) => p !== "server" && p !== "store")).toBe(true)
  })

  it("an unset variable names the secret's field", () => {
    const e = decode({ directory: { regions: [{ name: "us", url: "http://x", secret: { env: "NOPE" } }] } })
    expect(Either.isLeft(e) && e.left.issues).toEqual([
      { path: "directory.regions.0.secret", message: "environment variable NOPE is not set" }
    ])
  })
})

describe("Prometheus", () => {
  it("encodes counters, gauges and histograms with labels", async () => {
    const counter = Metric.counter("test_http_counter_total", { incremental: true }).pipe(
      Metric.tagged("provider", "a\"b")
    )
    const gauge = Metric.gauge("test_http_gauge")
    const histogram = Metric.histogram("test_http_seconds", MetricBoundaries.fromIterable([0.1, 1]))
    await Effect.runPromise(Effect.all([
      Metric.increment(counter),
      Metric.set(gauge, 3),
      Metric.update(histogram, 0.5)
    ]))
    const text = await Effect.runPromise(Prometheus.render)
    expect(text).toContain("# TYPE test_http_counter_total counter\ntest_http_counter_total{provider=\"a\\\"b\"} 1")
    expect(text).toContain("# TYPE test_http_gauge gauge\ntest_http_gauge 3")
    expect(text).toContain("test_http_seconds_bucket{le=\"1\"} 1\ntest_http_seconds_bucket{le=\"+Inf\"} 1")
    expect(text).toContain("test_http_seconds_count 1")
    expect(text).toContain("# TYPE cellgate_outbox_depth gauge")
  })

  it("lists every metric of docs/interfaces.md#metrics, with its type, before its first sample", async () => {
    // the table's rows: | `cellgate_…` | type | labels | counts |
    const doc = Fs.readFileSync(Path.resolve(import.meta.dirname, "../../docs/interfaces.md"), "utf8")
    const documented = [...doc.matchAll(/^\| `(cellgate_[a-z_]+)` \| (counter|gauge|histogram) \|/gm)]
      .map((m) => [m[1]!, m[2]!] as const)
    expect(documented.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        "cellgate_region_concurrency",
        "cellgate_region_paused_total",
        "cellgate_first_delivery_seconds"
      ])
    )
    expect([...Prometheus.cellgateMetrics].sort()).toEqual([...documented].sort())
    const text = Prometheus.encode([])
    for (const [name, type] of documented) expect(text).toContain(`# TYPE ${name} ${type}\n`)
  })
})

describe("log redaction", () => {
  it("redacts secret headers, nested too, and Redacted values", () => {
    const lines: Array<string> = []
    const sink = Logging.makeSink((l) => lines.push(l))
    Effect.runSync(
      Effect.logInfo("x").pipe(
        Effect.annotateLogs({
          headers: {
            authorization: "Bearer A",
            "x-gitlab-token": "B",
            "shared-secret": "C",
            "x-hub-signature-256": "D",
            "x-slack-signature": "E",
            "x-cellgate-signature": "F",
            "content-type": "application/json"
          },
          secret: Redacted.make("G")
        }),
        Effect.provide(Logging.layer(sink))
      )
    )
    const entry = JSON.parse(lines[0]!)
    expect(entry.headers["content-type"]).toBe("application/json")
    for (const v of ["Bearer A", "\"B\"", "\"C\"", "\"D\"", "\"E\"", "\"F\"", "\"G\""]) {
      expect(lines[0]).not.toContain(v)
    }
  })

  it("holds lines until released", () => {
    const out: Array<string> = []
    const sink = Logging.makeSink((l) => out.push(l))
    sink.hold()
    sink.write("a")
    expect(out).toEqual([])
    sink.release()
    sink.write("b")
    expect(out).toEqual(["a", "b"])
  })
})
