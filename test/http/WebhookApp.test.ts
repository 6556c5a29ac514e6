// `WebhookApp.make()` mounted in an application's own `HttpRouter` (beside a route of its own), served by
// NodeHttpServer on port 0, through real HTTP: a Jira Server webhook is 202 and lands in the outbox, a body over the
// limit is 413 (declared or streamed), a control path is 404 — and every answer is the one `cellgate serve` gives
// for the same request on the same directory (status, headers, body).
import { Memory } from "@cellgate/adapters"
import type { WebhookRequest } from "@cellgate/core"
import { DirectoryStore, Gateway, jiraServerToken, Outbox, Providers, RegionClient, VolumeGate } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer, Prometheus, WebhookApp } from "@cellgate/http"
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, FastCheck as fc, Layer, Scope } from "effect"
import * as Http from "node:http"
import { directory } from "../support/Directory.js"
import type { Reply } from "../support/Http.js"
import { call, readFixture } from "../support/Http.js"

const SECRET = "jira-server-webhook-secret"
const LIMIT = 4096
const statusBody = readFixture("jira-server", "sentry_issue_updated_status_minimal.json")

const directoryJson = {
  regions: [{ name: "us", url: "http://127.0.0.1:9" }, { name: "eu", url: "http://127.0.0.1:9" }],
  organizations: [{ id: 1, slug: "acme-us", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
  integrations: [{ id: 10, provider: "jira_server", externalId: "jira-1", metadata: { webhookSecret: SECRET } }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 10 }]
}

/** An application's router: a route of its own, cellgate on both routed prefixes. */
const router = HttpRouter.empty.pipe(
  HttpRouter.get("/app/hello", HttpServerResponse.text("hello from the app")),
  HttpRouter.all("/extensions/*", WebhookApp.make({ maxBodyBytes: LIMIT })),
  HttpRouter.all("/plugins/*", WebhookApp.make({ maxBodyBytes: LIMIT }))
)

/** The ports, composed as an application does (no `@cellgate/http` configuration involved). */
const ports = Layer.mergeAll(
  DirectoryStore.layerMemory(directory(directoryJson)),
  Memory.outboxLayer,
  VolumeGate.layerMemory,
  Providers.layer(),
  Layer.succeed(RegionClient.RegionClient, {
    send: () => Effect.dieMessage("no forward in this test")
  })
)

const app = HttpServer.serve(router).pipe(
  Layer.provide(Gateway.layer),
  Layer.provideMerge(ports),
  Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" }))
)

let scope: Scope.CloseableScope
let context: Context.Context<Layer.Layer.Success<typeof app>>
let appUrl: string
let serve: EmbeddedServer

const outboxOf = () =>
  Effect.runPromise(Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes).pipe(Effect.provide(context)))

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  context = await Effect.runPromise(Layer.buildWithScope(app, scope))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  appUrl = `http://127.0.0.1:${address.port}`
  serve = await makeServer({
    server: { port: 0, maxBodyBytes: LIMIT },
    store: { kind: "memory", ephemeral: true },
    directory: directoryJson
  }, { worker: false, log: () => {} })
})

afterAll(async () => {
  await serve?.close()
  if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const jiraPath = async (externalId = "jira-1") =>
  `/extensions/jira-server/issue-updated/${await jiraServerToken(externalId, SECRET)}/`

/** A request whose body is sent chunked (no `content-length`): the limit is counted while reading. */
const chunked = (base: string, path: string, chunks: ReadonlyArray<Buffer>): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const req = Http.request({ host: url.hostname, port: url.port, method: "POST", path, agent: false }, (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (c: Buffer) => parts.push(c))
      res.on("end", () => {
        const body = Buffer.concat(parts)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") })
      })
    })
    // the server may answer 413 and close before the rest is written
    req.on("error", (e) => (e.message.includes("EPIPE") || e.message.includes("ECONNRESET") ? undefined : reject(e)))
    for (const c of chunks) req.write(c)
    req.end()
  })

/** `cellgate_requests_total{provider="jira_server",status="413"}` in this process. */
const tooLargeCount = async () => {
  const text = await Effect.runPromise(Prometheus.render)
  const m = text.match(/cellgate_requests_total\{provider="jira_server",status="413"\} (\d+)/)
  return m === null ? 0 : Number(m[1])
}

/** The headers to compare: all but `date` (the clock) and `keep-alive` (each host's own timeout). */
const comparable = (reply: Reply) => {
  const { date: _date, "keep-alive": _keepAlive, ...rest } = reply.headers
  return { status: reply.status, headers: rest, body: reply.text }
}

describe("WebhookApp mounted in an HttpRouter", () => {
  it("the application's own route still answers", async () => {
    const reply = await call(appUrl, "/app/hello")
    expect(reply.status).toBe(200)
    expect(reply.text).toBe("hello from the app")
  })

  it("a Jira Server webhook is 202 with an empty body and lands in the outbox, one copy per region", async () => {
    const before = await outboxOf()
    const reply = await call(appUrl, await jiraPath(), {
      body: statusBody,
      headers: { "content-type": "application/json", "x-cellgate-mailbox": "spoofed" }
    })
    expect(reply.status).toBe(202)
    expect(reply.body.length).toBe(0)
    const after = await outboxOf()
    const depth = (mailboxes: typeof after) => Object.fromEntries(mailboxes.map((m) => [m.mailbox, m.depth]))
    expect(depth(after)).toEqual({
      "jira_server:eu:10": (depth(before)["jira_server:eu:10"] ?? 0) + 1,
      "jira_server:us:10": (depth(before)["jira_server:us:10"] ?? 0) + 1
    })
  })

  it("a body over the limit is 413 payload_too_large, declared or streamed, and nothing is stored", async () => {
    const before = await outboxOf()
    const counted = await tooLargeCount()
    const declared = await call(appUrl, await jiraPath(), { body: Buffer.alloc(LIMIT + 1, 120) })
    expect(declared.status).toBe(413)
    expect(declared.headers["content-type"]).toBe("application/json")
    expect(declared.headers.connection).toBe("close")
    expect(JSON.parse(declared.text).error).toBe("payload_too_large")
    const streamed = await chunked(appUrl, await jiraPath(), [Buffer.alloc(LIMIT, 120), Buffer.alloc(64, 120)])
    expect(streamed.status).toBe(413)
    expect(JSON.parse(streamed.text).error).toBe("payload_too_large")
    // exactly at the limit is accepted
    const padded = Buffer.concat([statusBody, Buffer.alloc(LIMIT - statusBody.length, 32)])
    const atLimit = await chunked(appUrl, await jiraPath(), [padded.subarray(0, 1000), padded.subarray(1000)])
    expect(atLimit.status).toBe(202)
    const after = await outboxOf()
    expect(after.reduce((n, m) => n + m.depth, 0)).toBe(before.reduce((n, m) => n + m.depth, 0) + 2)
    // both counted under the path's provider (the application's ProviderRegistry), as serve counts them
    expect(await tooLargeCount()).toBe(counted + 2)
  })

  it("a control path is 404 (no ControlHandler provided)", async () => {
    for (const path of ["/plugins/setup", "/extensions/jira-server/configure/", "/extensions/not-a-provider/x"]) {
      const reply = await call(appUrl, path)
      expect(reply.status, path).toBe(404)
      expect(JSON.parse(reply.text).error, path).toBe("not_found")
    }
  })

  const requests = fc.record({
    kind: fc.constantFrom("valid", "unknownIntegration", "badToken", "control", "unknownProvider", "tooLarge"),
    method: fc.constantFrom("POST", "PUT", "GET"),
    query: fc.constantFrom("", "?user_id=1", "?a=b&c=%20"),
    size: fc.integer({ min: 0, max: 64 })
  })

  const seenStatuses = new Set<number>()
  afterAll(() => {
    // the comparison covered accepted, ignored, not found and too large answers
    expect([...seenStatuses].sort()).toEqual(expect.arrayContaining([202, 404, 413]))
  })

  it.effect.prop(
    "answers exactly as `cellgate serve` does for the same request",
    [requests],
    ([r]) =>
      Effect.promise(async () => {
        const path = r.kind === "valid"
          ? await jiraPath()
          : r.kind === "unknownIntegration"
          ? await jiraPath("nobody")
          : r.kind === "badToken"
          ? "/extensions/jira-server/issue-updated/not-a-token/"
          : r.kind === "control"
          ? "/plugins/servlet/setup"
          : r.kind === "unknownProvider"
          ? "/extensions/nope/x"
          : await jiraPath()
        const body = r.kind === "tooLarge"
          ? Buffer.alloc(LIMIT + 1 + r.size, 97)
          : r.size % 2 === 0
          ? statusBody
          : Buffer.alloc(r.size, 97)
        const options = { method: r.method, body, headers: { "content-type": "application/json" } }
        const [fromApp, fromServe] = await Promise.all([
          call(appUrl, path + r.query, options),
          call(serve.url, path + r.query, options)
        ])
        expect(comparable(fromApp)).toEqual(comparable(fromServe))
        seenStatuses.add(fromApp.status)
      }),
    { fastCheck: { numRuns: 40 } }
  )
})

describe("WebhookApp request conversion", () => {
  it("never takes x-cellgate-* headers from the sender (same rule as serve)", async () => {
    const seen: Array<WebhookRequest> = []
    const recording = Layer.succeed(Gateway.Gateway, {
      handle: (request: WebhookRequest) =>
        Effect.sync(() => {
          seen.push(request)
          return { status: 202, headers: {}, body: new Uint8Array(0) }
        }),
      route: () => Effect.dieMessage("unused")
    })
    const served = HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.all("/extensions/*", WebhookApp.make()))).pipe(
      Layer.provide(recording),
      Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" }))
    )
    const local = Effect.runSync(Scope.make())
    try {
      const ctx = await Effect.runPromise(Layer.buildWithScope(served, local))
      const address = Context.get(ctx, HttpServer.HttpServer).address
      const port = address._tag === "TcpAddress" ? address.port : 0
      const reply = await call(`http://127.0.0.1:${port}`, "/extensions/x/y?z=1", {
        body: "abc",
        headers: { "x-cellgate-delivery-id": "spoofed", "x-other": "kept" }
      })
      expect(reply.status).toBe(202)
      expect(seen).toHaveLength(1)
      expect(seen[0]!.path).toBe("/extensions/x/y?z=1")
      expect(seen[0]!.method).toBe("POST")
      expect(Buffer.from(seen[0]!.body).toString()).toBe("abc")
      expect(seen[0]!.headers["x-other"]).toBe("kept")
      expect(seen[0]!.headers["x-cellgate-delivery-id"]).toBeUndefined()
    } finally {
      await Effect.runPromise(Scope.close(local, Exit.void))
    }
  })
})
