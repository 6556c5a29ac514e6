// The HTTP adapter: health, readiness, metrics, body limits, read timeouts, the control proxy and graceful shutdown,
// through real HTTP on loopback.
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Http from "node:http"
import * as Net from "node:net"
import type { Stub } from "../support/Http.js"
import { call, closedPort, startStub } from "../support/Http.js"

let control: Stub
let server: EmbeddedServer

beforeAll(async () => {
  control = await startStub((req) =>
    req.path.startsWith("/slow")
      ? { status: 200, body: "slow done", delayMs: 400 }
      : {
        status: 418,
        headers: { "content-type": "text/x-control", "x-upstream": "1", "keep-alive": "timeout=1" },
        body: `control saw ${req.method} ${req.path}`
      }
  )
  server = await makeServer({
    server: { maxBodyBytes: 1024, readTimeoutMs: 400 },
    store: { kind: "memory", ephemeral: true },
    control: { upstream: control.url }
  }, { port: 0, worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
  await control?.close()
})

describe("endpoints", () => {
  it("GET /healthz → 200 ok", async () => {
    const r = await call(server.url, "/healthz")
    expect(r.status).toBe(200)
    expect(r.text).toBe("ok")
  })

  it("GET /readyz → 200 once the store answers", async () => {
    expect((await call(server.url, "/readyz")).status).toBe(200)
  })

  it("GET /metrics → Prometheus text with every INTERFACES name", async () => {
    await call(server.url, "/extensions/nothing-here/webhook/", { body: "{}" })
    const r = await call(server.url, "/metrics")
    expect(r.status).toBe(200)
    expect(r.headers["content-type"]).toContain("text/plain")
    for (
      const name of [
        "cellgate_requests_total",
        "cellgate_decisions_total",
        "cellgate_dropped_total",
        "cellgate_enqueue_seconds",
        "cellgate_outbox_depth",
        "cellgate_outbox_oldest_age_seconds",
        "cellgate_deliveries_total",
        "cellgate_delivery_seconds",
        "cellgate_ordering_relaxed_total"
      ]
    ) expect(r.text).toContain(`# TYPE ${name} `)
    // an unknown provider is counted as `unknown`, never by its raw segment (bounded labels, issue #10)
    expect(r.text).toMatch(/cellgate_decisions_total\{kind="control",provider="unknown"\} \d+/)
  })
})

describe("body limit (413)", () => {
  it("rejects on content-length before reading", async () => {
    const r = await call(server.url, "/extensions/jira-server/issue-updated/x/", { body: Buffer.alloc(1025, 97) })
    expect(r.status).toBe(413)
    expect(JSON.parse(r.text)).toMatchObject({ error: "payload_too_large" })
  })

  it("rejects a chunked body once it passes the limit while reading", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(server.url)
      const req = Http.request(
        { host: url.hostname, port: url.port, method: "POST", path: "/x", agent: false },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }
      )
      req.on("error", reject)
      req.write(Buffer.alloc(800, 97))
      req.write(Buffer.alloc(800, 97))
      setTimeout(() => req.end(), 50)
    })
    expect(status).toBe(413)
  })

  it("counts 413s in cellgate_requests_total", async () => {
    const r = await call(server.url, "/metrics")
    expect(r.text).toMatch(/cellgate_requests_total\{provider="jira_server",status="413"\} \d+/)
  })

  it("accepts a body at the limit", async () => {
    const r = await call(server.url, "/echo", { body: Buffer.alloc(1024, 97) })
    expect(r.status).toBe(418)
  })
})

describe("read timeout", () => {
  it("cuts a client that stalls mid-body", async () => {
    const url = new URL(server.url)
    const started = Date.now()
    const outcome = await new Promise<string>((resolve) => {
      const socket = Net.connect(Number(url.port), url.hostname, () => {
        socket.write("POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
      })
      let data = ""
      socket.on("data", (c) => (data += c.toString()))
      socket.on("close", () => resolve(data))
      socket.on("error", () => resolve(data))
      setTimeout(() => {
        socket.destroy()
        resolve("still open")
      }, 5_000)
    })
    expect(outcome).not.toBe("still open")
    expect(outcome === "" || outcome.startsWith("HTTP/1.1 408")).toBe(true)
    expect(Date.now() - started).toBeLessThan(4_000)
  })
})

describe("control proxy", () => {
  it("proxies method, path with query, headers minus hop-by-hop, body; relays status, headers and body", async () => {
    const r = await call(server.url, "/api/0/organizations/?cursor=1", {
      method: "PUT",
      body: "payload",
      headers: { "x-custom": "kept", "content-type": "text/plain", "x-cellgate-attempt": "spoof" }
    })
    expect(r.status).toBe(418)
    expect(r.text).toBe("control saw PUT /api/0/organizations/?cursor=1")
    expect(r.headers["x-upstream"]).toBe("1")
    expect(r.headers["content-type"]).toBe("text/x-control")
    const got = control.received.at(-1)!
    expect(got.body.toString()).toBe("payload")
    expect(got.headers["x-custom"]).toBe("kept")
    expect(got.headers["x-cellgate-attempt"]).toBeUndefined()
  })

  it("Control decisions under /extensions/ go to the upstream too (setup path, unknown provider)", async () => {
    expect((await call(server.url, "/extensions/jira-server/setup/")).text).toBe(
      "control saw GET /extensions/jira-server/setup/"
    )
    expect((await call(server.url, "/extensions/nope/x/", { body: "{}" })).status).toBe(418)
  })

  it("unreachable upstream → 502 JSON", async () => {
    const port = await closedPort()
    const s = await makeServer({
      store: { kind: "memory", ephemeral: true },
      control: { upstream: `http://127.0.0.1:${port}` }
    }, { port: 0, worker: false, log: () => {} })
    try {
      const r = await call(s.url, "/anything")
      expect(r.status).toBe(502)
      expect(JSON.parse(r.text)).toMatchObject({ error: "upstream_unreachable" })
    } finally {
      await s.close()
    }
  })
})

describe("graceful shutdown", () => {
  it("stops accepting but lets the request in flight finish", async () => {
    const s = await makeServer({
      store: { kind: "memory", ephemeral: true },
      control: { upstream: control.url }
    }, { port: 0, worker: false, log: () => {} })
    const inflight = call(s.url, "/slow")
    await new Promise((r) => setTimeout(r, 100))
    expect(s.inFlight()).toBe(1)
    const closing = s.close()
    await new Promise((r) => setTimeout(r, 50))
    await expect(call(s.url, "/healthz")).rejects.toThrow()
    const r = await inflight
    expect(r.status).toBe(200)
    expect(r.text).toBe("slow done")
    await closing
  })
})
