// Issue #10 item 4: what a route captures from the path is validated before anything is forwarded — the Bitbucket
// Server `<integration id>` (digits) and the Jira Cloud issue key (`<project>-<number>`); anything else goes to
// Control. Observed from outside: status, what the region stub receives, what the outbox holds.
import { JiraCloud, Outbox } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import * as Jose from "jose"
import type { Stub } from "../support/Http.js"
import { call, startStub } from "../support/Http.js"

const SHARED = "jira cloud shared secret for captures"
const CLIENT = "captures-client"

let region: Stub
let server: EmbeddedServer

beforeAll(async () => {
  region = await startStub()
  server = await makeServer({
    server: { port: 0 },
    store: { kind: "memory", ephemeral: true },
    delivery: { pollIntervalMs: 20 },
    directory: {
      regions: [{ name: "us", url: region.url }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [{ id: 20, provider: "jira", externalId: CLIENT, metadata: { sharedSecret: SHARED } }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 20 }]
    }
  }, { log: () => {} })
})

afterAll(async () => {
  await server?.close()
  await region?.close()
})

afterEach(() => {
  region.received.length = 0
})

const outboxEmpty = () =>
  server.runPromise(Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes).pipe(Effect.map((m) => m.length === 0)))

/** Captures that are not plain digits / an issue key: dot segments plain and encoded, encodings, signs, spaces. */
const hostile = fc.oneof(
  fc.constantFrom(
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F..%2F",
    "%2e%2e%2fadmin",
    "..%2F..%2Fetc",
    "1%2F..",
    "1;x",
    "-1",
    "+1",
    "0x1f",
    "1e3",
    "%20",
    "%D9%A1%D9%A2",
    "1%20",
    "ABC-1%2F..",
    "%41BC-1%2F"
  ),
  fc.stringMatching(/^[^/?#]{1,12}$/).filter((s) => !/^[0-9]+$/.test(s) && !JiraCloud.ISSUE_KEY.test(s)).map(
    encodeURIComponent
  )
)

describe("Bitbucket Server <integration id>", () => {
  const path = (id: string) => `/extensions/bitbucket-server/organizations/1/webhook/${id}/`

  it("the reported case: %2e%2e%2f… is Control, never 202, never delivered", async () => {
    const reply = await call(server.url, path("%2e%2e%2f%2e%2e%2fadmin"), { body: "{}" })
    expect(reply.status).toBe(404)
    expect(JSON.parse(reply.text)).toMatchObject({ error: "not_found" })
    await new Promise((r) => setTimeout(r, 100))
    expect(region.received).toHaveLength(0)
    expect(await outboxEmpty()).toBe(true)
  })

  it("anything but a positive integer is Control; digits are enqueued and delivered as sent", async () => {
    for (const id of [...fc.sample(hostile, { numRuns: 150, seed: 4 }), "0", "00"]) {
      const reply = await call(server.url, path(id), { body: "{}" })
      expect(reply.status, id).not.toBe(202)
      expect(reply.status, id).toBeLessThan(500)
    }
    await new Promise((r) => setTimeout(r, 100))
    expect(region.received).toHaveLength(0)
    expect(await outboxEmpty()).toBe(true)
    expect((await call(server.url, path("42"), { body: "{}" })).status).toBe(202)
    const [got] = await region.waitFor(1)
    expect(got!.path).toBe(path("42"))
  })
})

describe("Jira Cloud issue/<issue key>/", () => {
  const path = (key: string) => `/extensions/jira/issue/${key}/`
  const jwtFor = async (p: string) =>
    new Jose.SignJWT({ iss: CLIENT, qsh: await Effect.runPromise(JiraCloud.queryStringHash("GET", p)) })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode(SHARED))
  const get = async (key: string) =>
    call(server.url, path(key), { method: "GET", headers: { authorization: `JWT ${await jwtFor(path(key))}` } })

  it("a key that is not <project>-<number> (validly signed) is Control, never forwarded", async () => {
    for (const key of [...fc.sample(hostile, { numRuns: 100, seed: 5 }), "ABC", "ABC-0", "1-ABC", "-1", "ABC--1"]) {
      const reply = await get(key)
      expect(reply.status, key).toBe(404)
      expect(JSON.parse(reply.text), key).toMatchObject({ error: "not_found" })
    }
    expect(region.received).toHaveLength(0)
  })

  it.prop("JiraCloud.ISSUE_KEY takes exactly the issue-key shape (on the decoded segment)", [
    fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,9}-[1-9][0-9]{0,6}$/),
    hostile
  ], ([key, bad]) => {
    expect(JiraCloud.ISSUE_KEY.test(key)).toBe(true)
    expect(JiraCloud.ISSUE_KEY.test(decodeURIComponent(bad))).toBe(false)
  })

  it("a key of the right shape is forwarded to the region", async () => {
    const reply = await get("PROJ_2-123")
    expect(reply.status).toBe(200)
    const [got] = await region.waitFor(1)
    expect(got!.path).toBe(path("PROJ_2-123"))
  })
})
