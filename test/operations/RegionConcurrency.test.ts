// Fair, adaptive delivery seen from outside (docs/routing.md#fair-adaptive-delivery, docs/delivery.md): a
// `cellgate worker --metrics-port` on PostgreSQL delivering to stub regions. Its /metrics shows the adaptive limit
// `cellgate_region_concurrency{region}` within [1, delivery.concurrency] and the region never sees more requests in
// flight than that; every payload arrives with `x-cellgate-sequence` 1, 2, 3, … per mailbox, in enqueue order; a 503
// with `Retry-After` pauses the whole region (another mailbox's payload waits too) and counts in
// `cellgate_region_paused_total{region}`.
import { jiraServerToken } from "@cellgate/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { performance } from "node:perf_hooks"
import type { Served } from "../support/Http.js"
import { call, ensureBuilt, fixture, readFixture, serveCli, tempDir, writeJson } from "../support/Http.js"
import type { WorkerProcess } from "../support/Processes.js"
import { createDatabase, dbUrl, dropDatabase, startWorker } from "../support/Processes.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const SECRET: string = vector.webhook_secret
const template = JSON.parse(Fs.readFileSync(fixture("jira-server", "sentry_issue_updated_status_minimal.json"), "utf8"))
/** The Jira Server webhook body with a marker `n` (which webhook it is), so the region can tell them apart. */
const bodyOf = (n: number) => JSON.stringify({ ...template, n })

const CONCURRENCY = 4

interface Arrival {
  readonly at: number
  readonly mailbox: string
  readonly sequence: string | undefined
  readonly attempt: string | undefined
  readonly deliveryId: string | undefined
  readonly n: number
}

interface Region {
  readonly url: string
  readonly arrivals: Array<Arrival>
  /** The most requests this region had in flight at once. */
  readonly maxInFlight: () => number
  /** How the next request is answered (default: 200 after `delayMs`). */
  answer: (arrival: Arrival) => { status: number; headers?: Record<string, string>; delayMs: number }
  readonly close: () => Promise<void>
}

/** A region stub that counts its requests in flight (from the request's arrival to the end of its answer). */
const startRegion = async (delayMs: number): Promise<Region> => {
  const arrivals: Array<Arrival> = []
  let inFlight = 0
  let max = 0
  const timers = new Set<NodeJS.Timeout>()
  const server = Http.createServer((req, res) => {
    inFlight++
    max = Math.max(max, inFlight)
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const header = (name: string) => req.headers[name] as string | undefined
      const arrival: Arrival = {
        at: performance.now(),
        mailbox: header("x-cellgate-mailbox") ?? "",
        sequence: header("x-cellgate-sequence"),
        attempt: header("x-cellgate-attempt"),
        deliveryId: header("x-cellgate-delivery-id"),
        n: (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { n: number }).n
      }
      arrivals.push(arrival)
      const a = region.answer(arrival)
      const t = setTimeout(() => {
        timers.delete(t)
        inFlight--
        res.writeHead(a.status, a.headers ?? {})
        res.end()
      }, a.delayMs)
      timers.add(t)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const region: Region = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    maxInFlight: () => max,
    answer: () => ({ status: 200, delayMs }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
  return region
}

/** Integrations 10…15 in region `us` (organization 1), 20 and 21 in region `eu` (organization 2). */
const US = [10, 11, 12, 13, 14, 15]
const EU = [20, 21]
const externalId = (id: number) => `jira.example.org:region-concurrency-${id}`

let tmp: ReturnType<typeof tempDir>
let us: Region
let eu: Region
let db: string
let gateway: Served
let worker: WorkerProcess
const tokens = new Map<number, string>()

beforeAll(async () => {
  ensureBuilt()
  db = createDatabase("cellgate_region_concurrency")
  const env = { TEST_PG_URL: dbUrl(db) }
  tmp = tempDir()
  us = await startRegion(150)
  eu = await startRegion(20)
  for (const id of [...US, ...EU]) tokens.set(id, await jiraServerToken(externalId(id), SECRET))
  const file = writeJson(tmp.dir, "pg.json", {
    store: { kind: "postgres", url: { env: "TEST_PG_URL" } },
    // a short backoff, so the refused payload of the pause test is retried at its Retry-After (2 s), not minutes later
    delivery: { pollIntervalMs: 100, concurrency: CONCURRENCY, regionConcurrency: 2, backoffBaseMs: 500 },
    directory: {
      regions: [{ name: "eu", url: eu.url }, { name: "us", url: us.url }],
      organizations: [{ id: 1, slug: "acme", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
      integrations: [...US, ...EU].map((id) => ({
        id,
        provider: "jira_server",
        externalId: externalId(id),
        metadata: { webhookSecret: SECRET }
      })),
      organizationIntegrations: [
        ...US.map((integrationId) => ({ organizationId: 1, integrationId })),
        ...EU.map((integrationId) => ({ organizationId: 2, integrationId }))
      ]
    }
  })
  gateway = await serveCli(["--config", file, "--port", "0", "--no-worker"], { env })
  worker = await startWorker(["--config", file, "--metrics-port", "0"], env)
})

afterAll(async () => {
  if (worker !== undefined) await worker.stop()
  if (gateway !== undefined) await gateway.stop()
  await us?.close()
  await eu?.close()
  tmp?.cleanup()
  if (db !== undefined) dropDatabase(db)
})

/** Sends webhook `n` of integration `id`; it must be stored (202). */
const send = async (id: number, n: number) => {
  const reply = await call(gateway.url, `/extensions/jira-server/issue-updated/${tokens.get(id)}/`, {
    body: bodyOf(n),
    headers: { "content-type": "application/json" }
  })
  expect(reply.status).toBe(202)
}

const samples = (text: string, name: string) =>
  text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))

const metrics = async () => (await call(worker.metricsUrl!, "/metrics")).text

const until = async (condition: () => boolean, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe("cellgate worker: adaptive region limit and sequence numbers", () => {
  it("the limit gauge stays within [1, concurrency]; each mailbox's payloads arrive numbered 1, 2, 3, …", async () => {
    // 4 webhooks for each of six mailboxes, sent in turn: n = round * 10 + integration index
    let n = 0
    const sent = new Map<string, Array<number>>()
    for (let round = 0; round < 4; round++) {
      for (const id of US) {
        await send(id, n)
        const mailbox = `jira_server:us:${id}`
        sent.set(mailbox, [...(sent.get(mailbox) ?? []), n])
        n++
      }
    }
    // while they are delivered, the gauge is sampled
    const gauge: Array<number> = []
    const sampling = (async () => {
      while (us.arrivals.length < n) {
        for (const line of samples(await metrics(), "cellgate_region_concurrency")) {
          if (line.includes("region=\"us\"")) gauge.push(Number(line.slice(line.lastIndexOf(" ") + 1)))
        }
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    await until(() => us.arrivals.length >= n, 30_000, `${n} deliveries to us`)
    await sampling

    // every payload was sent once, on its first attempt (the region answered 200 to all)
    expect(us.arrivals.map((a) => a.attempt)).toEqual(us.arrivals.map(() => "1"))
    expect(new Set(us.arrivals.map((a) => a.deliveryId)).size).toBe(n)
    for (const [mailbox, ns] of sent) {
      const got = us.arrivals.filter((a) => a.mailbox === mailbox)
      // in enqueue order, numbered from 1 without gaps (a fresh database: every mailbox name is new)
      expect(got.map((a) => a.n), mailbox).toEqual(ns)
      expect(got.map((a) => a.sequence), mailbox).toEqual(ns.map((_, i) => String(i + 1)))
    }

    // the adaptive limit is exposed and bounded; the region never had more in flight than `concurrency`
    let text = ""
    const delivered = `cellgate_deliveries_total{outcome="ok",region="us"} ${n}`
    for (let i = 0; i < 100 && !samples(text, "cellgate_deliveries_total").includes(delivered); i++) {
      text = await metrics()
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(samples(text, "cellgate_deliveries_total")).toContain(delivered)
    expect(text).toContain("# TYPE cellgate_region_concurrency gauge\n")
    const line = samples(text, "cellgate_region_concurrency").find((l) => l.includes("region=\"us\""))
    expect(line, text).toBeDefined()
    gauge.push(Number(line!.slice(line!.lastIndexOf(" ") + 1)))
    for (const value of gauge) {
      expect(Number.isInteger(value), String(value)).toBe(true)
      expect(value).toBeGreaterThanOrEqual(1)
      expect(value).toBeLessThanOrEqual(CONCURRENCY)
    }
    // six mailboxes were due at once: the worker had more than one request in flight (the limit starts at 2)
    expect(us.maxInFlight()).toBeGreaterThanOrEqual(2)
    expect(us.maxInFlight()).toBeLessThanOrEqual(CONCURRENCY)
    expect(text).toContain("# TYPE cellgate_first_delivery_seconds histogram\n")
    expect(samples(text, "cellgate_first_delivery_seconds_count").find((l) => l.includes("region=\"us\""))).toBe(
      `cellgate_first_delivery_seconds_count{region="us"} ${n}`
    )
  })

  it("a 503 with Retry-After pauses the whole region: another mailbox's payload waits, the pause is counted", async () => {
    // the first request to eu gets 503 Retry-After: 2, every later one 200
    let refused: number | undefined
    eu.answer = (a) => {
      if (refused === undefined) {
        refused = a.at
        return { status: 503, headers: { "retry-after": "2" }, delayMs: 0 }
      }
      return { status: 200, delayMs: 20 }
    }
    await send(20, 1000)
    await until(() => eu.arrivals.length >= 1, 15_000, "the first request to eu")
    // a payload of another mailbox of the same region, stored during the pause
    await send(21, 1001)
    await until(() => eu.arrivals.length >= 3, 15_000, "both payloads delivered to eu")

    const [first, ...later] = eu.arrivals
    expect(first!.n).toBe(1000)
    const other = later.find((a) => a.n === 1001)!
    expect(other.sequence).toBe("1")
    expect(other.attempt).toBe("1")
    // without the pause the other mailbox would go out within a poll interval (100 ms); with it, after ~2 s
    expect(other.at - refused!).toBeGreaterThanOrEqual(1_800)
    // the refused payload is retried (its own Retry-After), keeping its number
    const retried = later.find((a) => a.n === 1000)!
    expect(retried.attempt).toBe("2")
    expect(retried.sequence).toBe(first!.sequence)
    expect(retried.deliveryId).toBe(first!.deliveryId)

    const text = await metrics()
    expect(text).toContain("# TYPE cellgate_region_paused_total counter\n")
    expect(samples(text, "cellgate_region_paused_total")).toContain("cellgate_region_paused_total{region=\"eu\"} 1")
  })
})
