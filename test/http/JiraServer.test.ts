// docs/routing.md#jira-server through real HTTP: every Jira Server row observed from outside (status, body, what the outbox holds,
// what the regions receive), with region stubs as real node:http servers and the delivery worker running.
import { Memory } from "@cellgate/adapters"
import { jiraServerToken, Outbox, StoreHealth, StoreUnavailable, verifyForwarded, VolumeGate } from "@cellgate/core"
import type { Config, EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Jose from "jose"
import { directory } from "../support/Directory.js"
import type { Stub } from "../support/Http.js"
import { call, readFixture, startStub } from "../support/Http.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const statusBody = readFixture("jira-server", "sentry_issue_updated_status_minimal.json")
const assigneeBody = readFixture("jira-server", "sentry_issue_updated_assignee_minimal.json")
const SECRET: string = vector.webhook_secret
const EXTERNAL: string = vector.external_id
const VALID: string = vector.valid_token
const EU_SECRET = "whsec_" + Buffer.from("eu region signing key 0123456789").toString("base64")

const path = (token: string) => `/extensions/jira-server/issue-updated/${token}/`

let us: Stub
let eu: Stub
let server: EmbeddedServer
const logs: Array<string> = []

const config = (): Config.ConfigInput => ({
  server: { port: 0 },
  store: { kind: "memory", ephemeral: true },
  delivery: { pollIntervalMs: 50 },
  directory: {
    regions: [{ name: "us", url: us.url }, { name: "eu", url: eu.url, secret: EU_SECRET }, {
      name: "de",
      url: "http://127.0.0.1:9"
    }],
    organizations: [
      { id: 1, slug: "acme-us", region: "us" },
      { id: 2, slug: "acme-eu", region: "eu" },
      { id: 3, slug: "acme-us-2", region: "us" },
      { id: 5, slug: "lost", region: "mars" }
    ],
    integrations: [
      { id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } },
      { id: 11, provider: "jira_server", externalId: "lonely", metadata: { webhookSecret: SECRET } },
      { id: 12, provider: "jira_server", externalId: "off", status: "disabled", metadata: { webhookSecret: SECRET } },
      { id: 13, provider: "jira_server", externalId: "lost", metadata: { webhookSecret: SECRET } }
    ],
    organizationIntegrations: [
      { organizationId: 2, integrationId: 10 },
      { organizationId: 1, integrationId: 10 },
      { organizationId: 3, integrationId: 10 },
      { organizationId: 1, integrationId: 11, status: "disabled" },
      { organizationId: 1, integrationId: 12 },
      { organizationId: 5, integrationId: 13 }
    ]
  }
})

beforeAll(async () => {
  us = await startStub()
  eu = await startStub()
  server = await makeServer(config(), { log: (line) => logs.push(line) })
})

afterAll(async () => {
  await server?.close()
  await us?.close()
  await eu?.close()
})

afterEach(() => {
  us.received.length = 0
  eu.received.length = 0
})

const outboxEmpty = () =>
  server.runPromise(Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    return (yield* outbox.mailboxes).length === 0 && (yield* outbox.deadLetters).length === 0
  }))

const nothingDelivered = async () => {
  await new Promise((r) => setTimeout(r, 150))
  expect(us.received).toHaveLength(0)
  expect(eu.received).toHaveLength(0)
  expect(await outboxEmpty()).toBe(true)
}

describe("Jira Server over HTTP", () => {
  it("enqueues one copy per region (sorted, unique), answers 202 with an empty body, and delivers the exact bytes", async () => {
    const reply = await call(server.url, path(VALID) + "?user_id=1", {
      body: statusBody,
      headers: {
        "content-type": "application/json",
        "user-agent": "Atlassian HttpClient",
        "x-atlassian-webhook-identifier": "abc-1",
        "x-cellgate-signature": "v1,spoofed",
        "x-cellgate-delivery-id": "spoofed",
        "x-cellgate-region": "spoofed"
      }
    })
    expect(reply.status).toBe(202)
    expect(reply.body.length).toBe(0)
    const [toUs] = await us.waitFor(1)
    const [toEu] = await eu.waitFor(1)
    for (const got of [toUs!, toEu!]) {
      expect(got.method).toBe("POST")
      expect(got.path).toBe(path(VALID) + "?user_id=1")
      expect(Buffer.compare(got.body, statusBody)).toBe(0)
      expect(got.headers["content-type"]).toBe("application/json")
      expect(got.headers["user-agent"]).toBe("Atlassian HttpClient")
      expect(got.headers["x-atlassian-webhook-identifier"]).toBe("abc-1")
      expect(got.headers["x-cellgate-attempt"]).toBe("1")
      expect(got.headers["x-cellgate-delivery-id"]).not.toBe("spoofed")
      expect(got.headers["x-cellgate-region"]).toBeUndefined()
    }
    expect(toUs!.headers["x-cellgate-mailbox"]).toBe("jira_server:us:10")
    expect(toEu!.headers["x-cellgate-mailbox"]).toBe("jira_server:eu:10")
    // us has no secret: no signature at all (the spoofed one was dropped at ingress)
    expect(toUs!.headers["x-cellgate-signature"]).toBeUndefined()
    // eu is signed with its own secret
    const verified = await verifyForwarded({ headers: toEu!.headers as never, body: toEu!.body }, EU_SECRET)
    expect(verified.ok).toBe(true)
    // delivered → gone from the outbox
    await new Promise((r) => setTimeout(r, 100))
    expect(await outboxEmpty()).toBe(true)
    expect(us.received).toHaveLength(1)
  })

  it("stores before answering: the payload is in the outbox with forwardable headers only (worker off)", async () => {
    const quiet = await makeServer(config(), { worker: false, log: () => {} })
    try {
      const reply = await call(quiet.url, path(VALID), {
        body: assigneeBody,
        headers: { "content-type": "application/json", "x-cellgate-attempt": "7", connection: "close" }
      })
      expect(reply.status).toBe(202)
      const stored = await quiet.runPromise(Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const boxes = (yield* outbox.mailboxes).map((m) => m.mailbox).sort()
        const heads = yield* Effect.forEach(boxes, (m) => outbox.head(m, 10))
        return { boxes, heads }
      }))
      expect(stored.boxes).toEqual(["jira_server:eu:10", "jira_server:us:10"])
      for (const [p] of stored.heads) {
        expect(Buffer.compare(Buffer.from(p!.body), assigneeBody)).toBe(0)
        expect(p!.integrationId).toBe(10)
        expect(Object.keys(p!.headers).filter((h) => h.startsWith("x-cellgate-") || h === "host" || h === "connection"))
          .toEqual([])
      }
    } finally {
      await quiet.close()
    }
  })

  const invalid: Array<[string, () => Promise<string>, string]> = [
    ["empty token", async () => "%20", "Token was empty"],
    ["not a JWT", async () => "not-a-jwt", "Could not decode JWT token"],
    ["no id claim", async () => vector.token_missing_id_claim, "Token did not contain `id`"],
    ["unknown integration", () => jiraServerToken("nobody", SECRET), "Could not find integration for token"],
    ["disabled integration", () => jiraServerToken("off", SECRET), "Could not find integration for token"],
    ["bad signature", async () => vector.invalid_signature_token, "Could not validate JWT"],
    ["alg none", async () => new Jose.UnsecuredJWT({ id: EXTERNAL }).encode(), "Could not validate JWT"],
    [
      "expired",
      () =>
        new Jose.SignJWT({ id: EXTERNAL }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(1).sign(
          new TextEncoder().encode(SECRET)
        ),
      "Could not validate JWT"
    ]
  ]
  for (const [name, token, reason] of invalid) {
    it(`invalid token (${name}) → 200, empty body, logged, nothing stored`, async () => {
      const t = await token()
      const before = logs.length
      const reply = await call(server.url, path(t), { body: statusBody })
      expect(reply.status).toBe(200)
      expect(reply.body.length).toBe(0)
      const lines = logs.slice(before).map((l) => JSON.parse(l))
      const info = lines.find((l) => l.message === "jira_server.no_integration")
      expect(info?.level).toBe("info")
      expect(String(info?.error)).toContain(reason)
      await nothingDelivered()
    })
  }

  it("no active organization → 400, empty body, nothing stored", async () => {
    const reply = await call(server.url, path(await jiraServerToken("lonely", SECRET)), { body: statusBody })
    expect(reply.status).toBe(400)
    expect(reply.body.length).toBe(0)
    await nothingDelivered()
  })

  const falsy = ["null", "false", "0", "\"\"", "{}", "[]"]
  for (const value of falsy) {
    it(`changelog ${value} → 200 missing-changelog, nothing stored`, async () => {
      const before = logs.length
      const reply = await call(server.url, path(VALID), { body: `{"changelog": ${value}, "issue": {"id": "1"}}` })
      expect(reply.status).toBe(200)
      expect(reply.body.length).toBe(0)
      const line = logs.slice(before).map((l) => JSON.parse(l)).find((l) => l.message === "missing-changelog")
      expect(line?.integration_id).toBe(10)
      await nothingDelivered()
    })
  }

  for (const body of ["not json at all", "[1,2,3]", "\"text\"", ""]) {
    it(`body ${JSON.stringify(body)} is treated as {} → 200, nothing stored`, async () => {
      const reply = await call(server.url, path(VALID), { body })
      expect(reply.status).toBe(200)
      await nothingDelivered()
    })
  }

  it("a GET on the webhook path goes through the same flow", async () => {
    const reply = await call(server.url, path(VALID), { method: "GET" })
    expect(reply.status).toBe(200) // no body → no changelog
  })

  it("an organization in a region missing from the directory → 500 region_not_found", async () => {
    const reply = await call(server.url, path(await jiraServerToken("lost", SECRET)), { body: statusBody })
    expect(reply.status).toBe(500)
    expect(JSON.parse(reply.text)).toMatchObject({ error: "region_not_found" })
    await nothingDelivered()
  })

  const controlPaths = [
    `/extensions/jira-server/issue-updated/${VALID}`,
    `/extensions/jira-server/issue-updated/${VALID}//`,
    "/extensions/jira-server/issue-updated//",
    "/extensions/jira-server/search/acme/10/",
    "/extensions/jira-server/setup/",
    "/extensions/jira-server/issue-updated/link/",
    "/extensions/unknown-provider/webhook/",
    "/extensions//webhook/",
    "/extensions/vercel/webhook/",
    "/api/0/organizations/"
  ]
  for (const p of controlPaths) {
    it(`${p} → Control (404 JSON without an upstream), nothing stored`, async () => {
      const reply = await call(server.url, p, { body: statusBody })
      expect(reply.status).toBe(404)
      expect(reply.headers["content-type"]).toBe("application/json")
      expect(JSON.parse(reply.text)).toMatchObject({ error: "not_found" })
      await nothingDelivered()
    })
  }

  it("logs never carry the token, and count requests in cellgate_requests_total", async () => {
    expect(logs.join("\n")).not.toContain(VALID.split(".")[2])
    expect(logs.join("\n")).not.toContain(SECRET)
    const webhook = logs.map((l) => JSON.parse(l)).find((l) => l.message === "webhook" && l.status === 202)
    expect(webhook?.path).toBe("/extensions/jira-server/issue-updated/<token>/?user_id=1")
    const metrics = await call(server.url, "/metrics")
    expect(metrics.text).toMatch(/cellgate_requests_total\{provider="jira_server",status="202"\} \d+/)
    expect(metrics.text).toMatch(/cellgate_decisions_total\{kind="enqueue",provider="jira_server"\} \d+/)
  })
})

describe("Jira Server under high volume", () => {
  it("bucketed mailboxes carry issue.id mod 100, and the switch is counted", async () => {
    let calls = 0
    const store = Layer.mergeAll(
      Memory.directoryLayer(directory({})),
      Memory.outboxLayer,
      Layer.succeed(StoreHealth.StoreHealth, StoreHealth.StoreHealth.of({ check: Effect.void })),
      Layer.succeed(
        VolumeGate.VolumeGate,
        VolumeGate.VolumeGate.of({ hit: () => Effect.sync(() => ({ bucketed: true, switched: calls++ === 0 })) }) // the shared store says: on
      )
    )
    const s = await makeServer({ ...config(), store: undefined }, { port: 0, store, worker: false, log: () => {} })
    try {
      const send = (issueId: unknown) =>
        call(s.url, path(VALID), { body: JSON.stringify({ changelog: { id: 1 }, issue: { id: issueId } }) })
      // the gateway counts in memory and learns the store's shared verdict when it adds its counts (every second)
      expect((await send("10042")).status).toBe(202)
      await new Promise((resolve) => setTimeout(resolve, 1_300))
      expect((await send("10042")).status).toBe(202)
      expect((await send(7)).status).toBe(202)
      expect((await send("not a number")).status).toBe(202)
      const boxes = await s.runPromise(
        Effect.map(Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes), (ms) => ms.map((m) => m.mailbox).sort())
      )
      expect(boxes).toEqual([
        "jira_server:eu:10",
        "jira_server:eu:10:42",
        "jira_server:eu:10:7",
        "jira_server:us:10",
        "jira_server:us:10:42",
        "jira_server:us:10:7"
      ])
      const metrics = await call(s.url, "/metrics")
      expect(metrics.text).toMatch(/cellgate_ordering_relaxed_total\{reason="bucketing_switch"\} [1-9]/)
    } finally {
      await s.close()
    }
  })
})

describe("Jira Server with the store down", () => {
  it("answers 503 store_unavailable with Retry-After: 5, and /readyz is 503", async () => {
    const dir = directory({
      regions: [{ name: "us", url: "http://127.0.0.1:9" }],
      organizations: [{ id: 1, slug: "a", region: "us" }],
      integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
    })
    const down = new StoreUnavailable({ operation: "enqueue" })
    const broken = Outbox.Outbox.of({ ...Memory.makeOutbox(), enqueue: () => Effect.fail(down) })
    const store = Layer.mergeAll(
      Memory.directoryLayer(dir),
      Memory.volumeGateLayer,
      Layer.succeed(Outbox.Outbox, broken),
      Layer.succeed(StoreHealth.StoreHealth, StoreHealth.StoreHealth.of({ check: Effect.fail(down) }))
    )
    const s = await makeServer({}, { port: 0, store, worker: false, log: () => {} })
    try {
      const reply = await call(s.url, path(VALID), { body: statusBody })
      expect(reply.status).toBe(503)
      expect(reply.headers["retry-after"]).toBe("5")
      expect(JSON.parse(reply.text)).toMatchObject({ error: "store_unavailable" })
      expect((await call(s.url, "/readyz")).status).toBe(503)
      expect((await call(s.url, "/healthz")).text).toBe("ok")
    } finally {
      await s.close()
    }
  })
})
