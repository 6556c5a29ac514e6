import { Memory } from "@cellgate/adapters"
import { DirectoryStore, jiraServerToken, Outbox, Providers, StoreUnavailable } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, TestClock } from "effect"
import * as Jose from "jose"
import { readFileSync } from "node:fs"
import { directory } from "../support/Directory.js"
import { handle, route, withGateway } from "../support/Gateway.js"
import { bytes, request, text } from "../support/Requests.js"

const fixture = (name: string) => readFileSync(new URL(`../fixtures/jira-server/${name}`, import.meta.url), "utf8")
const vector = JSON.parse(fixture("sentry_url_jwt_request.json"))
const statusBody = fixture("sentry_issue_updated_status_minimal.json")
const assigneeBody = fixture("sentry_issue_updated_assignee_minimal.json")

const SECRET: string = vector.webhook_secret
const EXTERNAL: string = vector.external_id

const directoryJson = {
  regions: [
    { name: "us", url: "http://us.test" },
    { name: "eu", url: "http://eu.test" },
    { name: "de", url: "http://de.test" }
  ],
  organizations: [
    { id: 1, slug: "acme-us", region: "us" },
    { id: 2, slug: "acme-eu", region: "eu" },
    { id: 3, slug: "acme-us-2", region: "us" },
    { id: 4, slug: "lonely", region: "de" },
    { id: 5, slug: "lost", region: "mars" }
  ],
  integrations: [
    { id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } },
    { id: 11, provider: "jira_server", externalId: "no-orgs", metadata: { webhookSecret: SECRET } },
    {
      id: 12,
      provider: "jira_server",
      externalId: "disabled",
      status: "disabled",
      metadata: { webhookSecret: SECRET }
    },
    { id: 13, provider: "jira", externalId: "cloud", metadata: { webhookSecret: SECRET } },
    { id: 14, provider: "jira_server", externalId: "unknown-region", metadata: { webhookSecret: SECRET } },
    { id: 15, provider: "jira_server", externalId: "inactive-links", metadata: { webhookSecret: SECRET } }
  ],
  organizationIntegrations: [
    { organizationId: 3, integrationId: 10 },
    { organizationId: 2, integrationId: 10 },
    { organizationId: 1, integrationId: 10 },
    { organizationId: 12, integrationId: 10 },
    { organizationId: 2, integrationId: 12 },
    { organizationId: 5, integrationId: 14 },
    { organizationId: 1, integrationId: 15, status: "disabled" }
  ]
}

const services = () => Layer.mergeAll(Memory.layer(directory(directoryJson)), Providers.layer())
const TestLive = () => withGateway(services())

const path = (token: string) => `/extensions/jira-server/issue-updated/${encodeURIComponent(token)}/`
const post = (token: string, body: string | Uint8Array = statusBody, method = "POST") =>
  handle(request(path(token), { body, method }))

const stored = Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes)

const hs256 = (claims: Record<string, unknown>, secret = SECRET, header: Jose.JWTHeaderParameters = { alg: "HS256" }) =>
  Effect.promise(() => new Jose.SignJWT(claims).setProtectedHeader(header).sign(new TextEncoder().encode(secret)))

const b64url = (s: string) => Buffer.from(s).toString("base64url")

describe("Jira Server issue-updated", () => {
  it.effect("the token minted by jiraServerToken is the reference's token, byte for byte", () =>
    Effect.gen(function*() {
      const token = yield* Effect.promise(() => jiraServerToken(EXTERNAL, SECRET))
      assert.strictEqual(token, vector.valid_token)
    }))

  it.effect("a valid token with a changelog is stored once per region, sorted, and answered 202 with no body", () =>
    Effect.gen(function*() {
      const outcome = yield* route(request(path(vector.valid_token), { body: statusBody }))
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "eu", mailbox: "jira_server:eu:10" },
        { region: "us", mailbox: "jira_server:us:10" }
      ])
      assert.deepStrictEqual<ReadonlyArray<string>>(outcome.regions, ["eu", "us"])
      assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [1, 2, 3])

      const response = yield* post(vector.valid_token)
      assert.strictEqual(response.status, 202)
      assert.strictEqual(text(response.body), "")
      const outbox = yield* Outbox.Outbox
      const boxes = yield* stored
      assert.deepStrictEqual(boxes.map((m) => [m.mailbox, m.region, m.depth]), [
        ["jira_server:eu:10", "eu", 1],
        ["jira_server:us:10", "us", 1]
      ])
      const [payload] = yield* outbox.head("jira_server:eu:10", 10)
      assert.deepStrictEqual(payload!.body, bytes(statusBody))
      assert.strictEqual(payload!.path, path(vector.valid_token))
      assert.strictEqual(payload!.integrationId, 10)
      assert.strictEqual(payload!.provider, "jira_server")
      const [usPayload] = yield* outbox.head("jira_server:us:10", 10)
      assert.notStrictEqual(usPayload!.deliveryId, payload!.deliveryId)
    }).pipe(Effect.provide(TestLive())))

  it.effect("the exact body bytes are stored, even when they are not UTF-8", () =>
    Effect.gen(function*() {
      const body = new Uint8Array([
        ...bytes("{\"changelog\":{\"items\":[1]},\"x\":\""),
        0xff,
        0x00,
        0xfe,
        ...bytes("\"}")
      ])
      // not valid UTF-8: parsed as {} — so no changelog, 200; a valid object with raw bytes in a string survives
      const r1 = yield* post(vector.valid_token, body)
      assert.strictEqual(r1.status, 200)
      const odd = bytes("{\"changelog\": {\"id\": 1}, \"note\": \"\\u0000 caf\u00e9\"}  \n")
      const r2 = yield* post(vector.valid_token, odd)
      assert.strictEqual(r2.status, 202)
      const [p] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("jira_server:us:10", 1))
      assert.deepStrictEqual(p!.body, odd)
    }).pipe(Effect.provide(TestLive())))

  it.effect("the method is not checked: a GET goes through the same flow", () =>
    Effect.gen(function*() {
      const r = yield* post(vector.valid_token, assigneeBody, "GET")
      assert.strictEqual(r.status, 202)
    }).pipe(Effect.provide(TestLive())))

  describe("every invalid token is answered 200 with an empty body and stores nothing", () => {
    const cases: ReadonlyArray<readonly [string, Effect.Effect<string>, string]> = [
      ["blank", Effect.succeed(vector.empty_token), "Token was empty"],
      ["not a JWT", Effect.succeed("not-a-jwt"), "Could not decode JWT token"],
      [
        "payload not JSON",
        Effect.succeed(`${b64url("{\"alg\":\"HS256\"}")}.${b64url("nope")}.sig`),
        "Could not decode JWT token"
      ],
      ["no id claim", Effect.succeed(vector.token_missing_id_claim), "Token did not contain `id`"],
      ["id not a string", hs256({ id: 10 }), "Token did not contain `id`"],
      ["unknown external id", hs256({ id: "nobody" }), "Could not find integration for token"],
      ["disabled integration", hs256({ id: "disabled" }), "Could not find integration for token"],
      ["another provider's integration", hs256({ id: "cloud" }), "Could not find integration for token"],
      ["bad signature", Effect.succeed(vector.invalid_signature_token), "Could not validate JWT: "],
      ["wrong secret", hs256({ id: EXTERNAL }, "another secret"), "Could not validate JWT: "],
      [
        "alg none",
        Effect.succeed(`${b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}")}.${b64url(JSON.stringify({ id: EXTERNAL }))}.`),
        "Could not validate JWT: "
      ],
      ["alg HS512", hs256({ id: EXTERNAL }, SECRET, { alg: "HS512" }), "Could not validate JWT: "],
      ["expired", hs256({ id: EXTERNAL, exp: -100 }), "Could not validate JWT: "],
      ["not yet valid", hs256({ id: EXTERNAL, nbf: 10_000 }), "Could not validate JWT: "]
    ]
    for (const [name, token, reason] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const t = yield* token
          const outcome = yield* route(request(path(t), { body: statusBody }))
          assert.strictEqual(outcome.decision._tag, "Respond")
          assert.isTrue(outcome.reason.startsWith(reason), `${outcome.reason} should start with ${reason}`)
          const response = yield* post(t)
          assert.strictEqual(response.status, 200)
          assert.strictEqual(text(response.body), "")
          assert.deepStrictEqual(yield* stored, [])
        }).pipe(Effect.provide(TestLive())))
    }
  })

  it.effect("exp and nbf are honoured against the Clock", () =>
    Effect.gen(function*() {
      const token = yield* hs256({ id: EXTERNAL, nbf: 60, exp: 120 })
      assert.strictEqual((yield* post(token)).status, 200) // t = 0: not yet valid
      yield* TestClock.setTime(90_000)
      assert.strictEqual((yield* post(token)).status, 202)
      yield* TestClock.setTime(121_000)
      assert.strictEqual((yield* post(token)).status, 200) // expired: the cache does not outlive exp
    }).pipe(Effect.provide(TestLive())))

  it.effect("an integration with no active organization is answered 400 with an empty body", () =>
    Effect.gen(function*() {
      for (const id of ["no-orgs", "inactive-links"]) {
        const r = yield* post(yield* hs256({ id }))
        assert.strictEqual(r.status, 400)
        assert.strictEqual(text(r.body), "")
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("an organization in a region the directory lacks is 500 region_not_found", () =>
    Effect.gen(function*() {
      const r = yield* post(yield* hs256({ id: "unknown-region" }))
      assert.strictEqual(r.status, 500)
      assert.deepStrictEqual(JSON.parse(text(r.body)).error, "region_not_found")
    }).pipe(Effect.provide(TestLive())))

  describe("a changelog that Python finds falsy is answered 200 and stores nothing", () => {
    const bodies = [
      ["missing", "{\"issue\":{\"id\":\"1\"}}"],
      ["null", "{\"changelog\":null}"],
      ["false", "{\"changelog\":false}"],
      ["0", "{\"changelog\":0}"],
      ["0.0", "{\"changelog\":0.0}"],
      ["empty string", "{\"changelog\":\"\"}"],
      ["empty object", "{\"changelog\":{}}"],
      ["empty array", "{\"changelog\":[]}"],
      ["body not JSON", "changelog"],
      ["body an array", "[{\"changelog\":{\"id\":1}}]"],
      ["body a string", "\"changelog\""],
      ["empty body", ""]
    ] as const
    for (const [name, body] of bodies) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const outcome = yield* route(request(path(vector.valid_token), { body }))
          assert.strictEqual(outcome.reason, "missing-changelog")
          const r = yield* post(vector.valid_token, body)
          assert.strictEqual(r.status, 200)
          assert.strictEqual(text(r.body), "")
          assert.deepStrictEqual(yield* stored, [])
        }).pipe(Effect.provide(TestLive())))
    }
    for (const truthy of ["1", "true", "\"x\"", "[0]", "{\"a\":null}", "-1", "0.5"]) {
      it.effect(`a truthy changelog (${truthy}) is stored`, () =>
        Effect.gen(function*() {
          const r = yield* post(vector.valid_token, `{"changelog":${truthy}}`)
          assert.strictEqual(r.status, 202)
        }).pipe(Effect.provide(TestLive())))
    }
  })

  it.effect("a store that cannot write is 503 store_unavailable with Retry-After, never 202", () =>
    Effect.gen(function*() {
      const r = yield* post(vector.valid_token)
      assert.strictEqual(r.status, 503)
      assert.strictEqual(r.headers["retry-after"], "5")
      assert.strictEqual(JSON.parse(text(r.body)).error, "store_unavailable")
    }).pipe(Effect.provide(withGateway(Layer.merge(
      services(),
      Layer.succeed(Outbox.Outbox, {
        ...Memory.makeOutbox(),
        enqueue: () => Effect.fail(new StoreUnavailable({ operation: "enqueue" }))
      })
    )))))

  it.effect("a verified token is cached for a short time only: a changed secret takes effect after the TTL", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* post(vector.valid_token)).status, 202)
      const store = yield* DirectoryStore.DirectoryStore
      yield* store.importDirectory(directory({
        ...directoryJson,
        integrations: directoryJson.integrations.map((i) =>
          i.id === 10 ? { ...i, metadata: { webhookSecret: "rotated" } } : i
        )
      }))
      assert.strictEqual((yield* post(vector.valid_token)).status, 202) // still cached
      yield* TestClock.adjust("11 seconds")
      const after = yield* route(request(path(vector.valid_token), { body: statusBody }))
      assert.isTrue(after.reason.startsWith("Could not validate JWT"))
    }).pipe(Effect.provide(TestLive())))

  it.effect("a rejected token is remembered for the same short time: a new integration is found after the TTL", () =>
    Effect.gen(function*() {
      const token = yield* hs256({ id: "newcomer" })
      assert.strictEqual((yield* post(token)).status, 200)
      const store = yield* DirectoryStore.DirectoryStore
      yield* store.importDirectory(directory({
        ...directoryJson,
        integrations: [...directoryJson.integrations, {
          id: 20,
          provider: "jira_server",
          externalId: "newcomer",
          metadata: { webhookSecret: SECRET }
        }],
        organizationIntegrations: [...directoryJson.organizationIntegrations, { organizationId: 1, integrationId: 20 }]
      }))
      const cached = yield* route(request(path(token), { body: statusBody }))
      assert.strictEqual(cached.reason, "Could not find integration for token")
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual((yield* post(token)).status, 202)
    }).pipe(Effect.provide(TestLive())))

  describe("paths", () => {
    const controlPaths = [
      `/extensions/jira-server/issue-updated/${vector.valid_token}`,
      "/extensions/jira-server/issue-updated//",
      `/extensions/jira-server/issue-updated/${vector.valid_token}/extra/`,
      "/extensions/jira-server/search/1/10/",
      `/extensions/jira_server/issue-updated/${vector.valid_token}/setup/`,
      `/extensions/jira-server/issue-updated/${vector.valid_token}/link/`
    ]
    for (const p of controlPaths) {
      it.effect(`${p.replace(vector.valid_token, "<token>")} is Control`, () =>
        Effect.gen(function*() {
          const outcome = yield* route(request(p, { body: statusBody }))
          assert.strictEqual(outcome.decision._tag, "Control")
          const r = yield* handle(request(p, { body: statusBody }))
          assert.strictEqual(r.status, 404) // no control upstream
          assert.deepStrictEqual(yield* stored, [])
        }).pipe(Effect.provide(TestLive())))
    }

    it.effect("a query string does not change the route, and is kept in the stored path", () =>
      Effect.gen(function*() {
        const p = `${path(vector.valid_token)}?user_id=admin&user_key=JIRAUSER10000`
        const r = yield* handle(request(p, { body: statusBody }))
        assert.strictEqual(r.status, 202)
        const [payload] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("jira_server:eu:10", 1))
        assert.strictEqual(payload!.path, p)
      }).pipe(Effect.provide(TestLive())))

    it.effect("the underscore spelling of the provider routes too", () =>
      Effect.gen(function*() {
        const r = yield* handle(
          request(`/extensions/jira_server/issue-updated/${vector.valid_token}/`, { body: statusBody })
        )
        assert.strictEqual(r.status, 202)
      }).pipe(Effect.provide(TestLive())))
  })

  describe("bucketing", () => {
    const issueBody = (id: unknown) => JSON.stringify({ changelog: { id: 1 }, issue: { id } })
    const mailboxOf = (body: string) =>
      route(request(path(vector.valid_token), { body })).pipe(
        Effect.map((o) => (o.decision._tag === "Enqueue" ? o.decision.targets.map((t) => t.mailbox) : []))
      )

    it.effect(
      "is off up to 3000 webhooks an hour, on past that for 24 hours, then off again",
      () =>
        Effect.gen(function*() {
          const relaxed = Metric.counter("cellgate_ordering_relaxed_total", { incremental: true }).pipe(
            Metric.tagged("reason", "bucketing_switch")
          )
          const before = (yield* Metric.value(relaxed)).count
          for (let i = 0; i < 3000; i++) {
            const boxes = yield* mailboxOf(issueBody(10_123))
            assert.deepStrictEqual(boxes, ["jira_server:eu:10", "jira_server:us:10"])
          }
          assert.deepStrictEqual(yield* mailboxOf(issueBody(10_123)), ["jira_server:eu:10:23", "jira_server:us:10:23"])
          assert.strictEqual((yield* Metric.value(relaxed)).count - before, 1)
          assert.deepStrictEqual(yield* mailboxOf(issueBody("4507")), ["jira_server:eu:10:7", "jira_server:us:10:7"])
          assert.deepStrictEqual(yield* mailboxOf(issueBody("-3")), ["jira_server:eu:10:97", "jira_server:us:10:97"])
          assert.deepStrictEqual(yield* mailboxOf(issueBody("123456789012345678901")), [
            "jira_server:eu:10:1",
            "jira_server:us:10:1"
          ])
          for (const noBucket of [null, "abc", 0, "", 1.5, true]) {
            assert.deepStrictEqual(yield* mailboxOf(issueBody(noBucket)), ["jira_server:eu:10", "jira_server:us:10"])
          }
          assert.deepStrictEqual(yield* mailboxOf("{\"changelog\":{\"id\":1}}"), [
            "jira_server:eu:10",
            "jira_server:us:10"
          ])
          // still on in the next hour, with few webhooks
          yield* TestClock.adjust("2 hours")
          assert.deepStrictEqual(yield* mailboxOf(issueBody(5)), ["jira_server:eu:10:5", "jira_server:us:10:5"])
          // off once the day has passed
          yield* TestClock.adjust("23 hours")
          assert.deepStrictEqual(yield* mailboxOf(issueBody(5)), ["jira_server:eu:10", "jira_server:us:10"])
          assert.strictEqual((yield* Metric.value(relaxed)).count - before, 2)
        }).pipe(Effect.provide(TestLive())),
      60_000
    )

    it.effect("dropped webhooks (no changelog) do not count towards the limit", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 3005; i++) yield* route(request(path(vector.valid_token), { body: "{}" }))
        assert.deepStrictEqual(yield* mailboxOf(issueBody(1)), ["jira_server:eu:10", "jira_server:us:10"])
      }).pipe(Effect.provide(TestLive())), 60_000)
  })
})
