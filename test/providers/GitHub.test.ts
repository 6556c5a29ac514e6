import { GitHub, Metrics, Outbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { createHmac } from "node:crypto"
import {
  assertAccepted,
  assertControl,
  assertError,
  bytes,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  testLayer
} from "./support.js"

const vector = JSON.parse(fixture("github", "signature_vector.json"))
const APP_SECRET = "app-secret"
const OWN_SECRET = "own-secret"
const GHE_HOST = "ghe.example.com"

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 100, provider: "github", externalId: "1000" },
    { id: 101, provider: "github", externalId: "2000" },
    { id: 102, provider: "github", externalId: "3000", status: "disabled" },
    { id: 103, provider: "github", externalId: "4000", metadata: { webhookSecret: OWN_SECRET } },
    { id: 104, provider: "github", externalId: "5000" },
    { id: 105, provider: "github_enterprise", externalId: "1000" },
    { id: 110, provider: "github_enterprise", externalId: `${GHE_HOST}:1000` },
    { id: 111, provider: "github_enterprise", externalId: `${GHE_HOST}:2000` }
  ],
  organizationIntegrations: [
    { organizationId: 3, integrationId: 100 },
    { organizationId: 2, integrationId: 100 },
    { organizationId: 1, integrationId: 100 },
    { organizationId: 1, integrationId: 101, status: "disabled" },
    { organizationId: 2, integrationId: 102 },
    { organizationId: 4, integrationId: 103 },
    { organizationId: 5, integrationId: 104 },
    { organizationId: 1, integrationId: 105 },
    { organizationId: 2, integrationId: 110 }
  ]
}

const withSecrets = () => testLayer(directoryJson, { github: APP_SECRET, github_enterprise: APP_SECRET })
const withoutSecrets = () => testLayer(directoryJson)

const PATH = "/extensions/github/webhook/"
const GHE_PATH = "/extensions/github-enterprise/webhook/"

const body = (installation: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ action: "opened", installation, repository: { id: 1234567 }, ...extra })

const signed = (
  path: string,
  payload: string,
  options: { event?: string; secret?: string | null; headers?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const headers: Record<string, string> = { "x-github-event": options.event ?? "issues", ...options.headers }
    if (options.secret !== null) {
      headers["x-hub-signature-256"] = yield* GitHub.signature(options.secret ?? APP_SECRET, bytes(payload))
    }
    return request(path, { body: payload, headers })
  })

const post = (path: string, payload: string, options: Parameters<typeof signed>[2] = {}) =>
  Effect.flatMap(signed(path, payload, options), handle)

const droppedCount = (provider: string, reason: string) =>
  Metric.value(Metrics.droppedTotal(provider, reason)).pipe(Effect.map((s) => s.count))

describe("GitHub signature", () => {
  it.effect("matches GitHub's published test vector", () =>
    Effect.gen(function*() {
      const sig = yield* GitHub.signature(vector.secret, bytes(vector.body))
      assert.strictEqual(sig, vector.headers["X-Hub-Signature-256"])
    }))

  it.effect("is node:crypto's HMAC over the exact bytes, an empty secret included", () =>
    Effect.gen(function*() {
      const body = new Uint8Array([0xff, 0x00, 0x7b, 0x7d, 0xc3, 0xa9])
      for (const secret of ["", "s", "éè long secret ".repeat(20)]) {
        const expected = `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`
        assert.strictEqual(yield* GitHub.signature(secret, body), expected)
      }
    }))
})

describe("github webhook/", () => {
  it.effect("a signed delivery is stored once per region (sorted), bucketed by repository.id mod 100, 202", () =>
    Effect.gen(function*() {
      const req = yield* signed(PATH, body({ id: 1000 }))
      const outcome = yield* route(req)
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      // docs/routing.md#github-event-type-mailboxes: the event type (`X-GitHub-Event: issues`) is the mailbox's last part
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "eu", mailbox: "github:eu:100:67:issues" },
        { region: "us", mailbox: "github:us:100:67:issues" }
      ])
      assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [1, 2, 3])
      assertAccepted(yield* handle(req))
      assert.deepStrictEqual(yield* stored, [["github:eu:100:67:issues", "eu", 1], [
        "github:us:100:67:issues",
        "us",
        1
      ]])
      const [payload] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("github:eu:100:67:issues", 1))
      assert.deepStrictEqual(payload!.body, req.body)
      assert.strictEqual(payload!.integrationId, 100)
      assert.strictEqual(payload!.provider, "github")
    }).pipe(Effect.provide(withSecrets())))

  it.effect("no repository → no bucket", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post(PATH, JSON.stringify({ action: "created", installation: { id: 1000 } })))
      assert.deepStrictEqual(yield* stored, [["github:eu:100:issues", "eu", 1], ["github:us:100:issues", "us", 1]])
    }).pipe(Effect.provide(withSecrets())))

  for (const event of ["installation", "installation_repositories"]) {
    it.effect(`${event} events go to Control, whatever their body or signature`, () =>
      Effect.gen(function*() {
        assertControl(yield* post(PATH, body({ id: 999 }), { event, secret: "wrong" }))
        assertControl(yield* post(PATH, "not json", { event, secret: null }))
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(withSecrets())))
  }

  describe("missing or malformed identity → 400", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["body not JSON", "{not json"],
      ["JSON that is not an object", "[1,2]"],
      ["no installation", JSON.stringify({ action: "opened", repository: { id: 1 } })],
      ["installation without id", body({ node_id: "x" })],
      ["installation.id not an id", body({ id: "abc" })]
    ]
    for (const [name, payload] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          assertError(yield* post(PATH, payload), 400, "missing_identity")
          assert.deepStrictEqual(yield* stored, [])
        }).pipe(Effect.provide(withSecrets())))
    }
  })

  it.effect("no integration (unknown, or not active) → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(PATH, body({ id: 424242 })), 400, "integration_not_found")
      assertError(yield* post(PATH, body({ id: 3000 })), 400, "integration_not_found")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("no active organization → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(PATH, body({ id: 2000 })), 400, "no_active_organization")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("an organization in a region the directory does not know → 500 region_not_found", () =>
    Effect.gen(function*() {
      assertError(yield* post(PATH, body({ id: 5000 })), 500, "region_not_found")
    }).pipe(Effect.provide(withSecrets())))

  describe("bad or missing signature when a secret is configured → 401, nothing stored", () => {
    it.effect("wrong secret", () =>
      Effect.gen(function*() {
        assertError(yield* post(PATH, body({ id: 1000 }), { secret: "wrong" }), 401, "invalid_signature")
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(withSecrets())))
    it.effect("missing header", () =>
      Effect.gen(function*() {
        assertError(yield* post(PATH, body({ id: 1000 }), { secret: null }), 401, "invalid_signature")
      }).pipe(Effect.provide(withSecrets())))
    it.effect("body changed after signing", () =>
      Effect.gen(function*() {
        const req = yield* signed(PATH, body({ id: 1000 }))
        const tampered = { ...req, body: bytes(body({ id: 1000 }, { extra: 1 })) }
        assertError(yield* handle(tampered), 401, "invalid_signature")
      }).pipe(Effect.provide(withSecrets())))
    it.effect("a signature that fails reveals nothing about the installation (401, not 400)", () =>
      Effect.gen(function*() {
        assertError(yield* post(PATH, body({ id: 424242 }), { secret: "wrong" }), 401)
        assertError(yield* post(PATH, "{not json", { secret: null }), 401)
      }).pipe(Effect.provide(withSecrets())))
  })

  it.effect("an integration's own metadata.webhookSecret overrides the app secret", () =>
    Effect.gen(function*() {
      assertError(yield* post(PATH, body({ id: 4000 })), 401, "invalid_signature")
      assertAccepted(yield* post(PATH, body({ id: 4000 }), { secret: OWN_SECRET }))
      assert.deepStrictEqual(yield* stored, [["github:de:103:67:issues", "de", 1]])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("the own secret is used when no app secret is configured", () =>
    Effect.gen(function*() {
      assertError(yield* post(PATH, body({ id: 4000 }), { secret: null }), 401)
      assertAccepted(yield* post(PATH, body({ id: 4000 }), { secret: OWN_SECRET }))
    }).pipe(Effect.provide(withoutSecrets())))

  it.effect("with no secret configured, deliveries route unverified", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post(PATH, body({ id: 1000 }), { secret: null }))
      assertAccepted(yield* post(PATH, body({ id: 1000 }), { secret: "anything" }))
      assert.deepStrictEqual(yield* stored, [["github:eu:100:67:issues", "eu", 2], [
        "github:us:100:67:issues",
        "us",
        2
      ]])
    }).pipe(Effect.provide(withoutSecrets())))

  describe("check_run / check_suite the regions never process: 202, nothing stored, counted", () => {
    const dropped: ReadonlyArray<readonly [string, unknown]> = [
      ["check_run", "created"],
      ["check_run", undefined],
      ["check_suite", "requested"],
      ["check_suite", "rerequested"]
    ]
    for (const [event, action] of dropped) {
      it.effect(`${event} ${String(action)}`, () =>
        Effect.gen(function*() {
          const before = yield* droppedCount("github", event)
          const r = yield* post(PATH, body({ id: 1000 }, { action }), { event })
          assertAccepted(r)
          assert.deepStrictEqual(yield* stored, [])
          assert.strictEqual((yield* droppedCount("github", event)) - before, 1)
          const outcome = yield* Effect.flatMap(signed(PATH, body({ id: 1000 }, { action }), { event }), route)
          assert.strictEqual(outcome.reason, `dropped:${event}`)
        }).pipe(Effect.provide(withSecrets())))
    }
    const kept: ReadonlyArray<readonly [string, string]> = [
      ["check_run", "completed"],
      ["check_run", "requested_action"],
      ["check_run", "rerequested"],
      ["check_suite", "completed"]
    ]
    for (const [event, action] of kept) {
      it.effect(`${event} ${action} is stored`, () =>
        Effect.gen(function*() {
          assertAccepted(yield* post(PATH, body({ id: 1000 }, { action }), { event }))
          assert.strictEqual((yield* stored).length, 2)
        }).pipe(Effect.provide(withSecrets())))
    }
    it.effect("a dropped event with a bad signature is still 401", () =>
      Effect.gen(function*() {
        const r = yield* post(PATH, body({ id: 1000 }, { action: "created" }), { event: "check_run", secret: "x" })
        assertError(r, 401)
      }).pipe(Effect.provide(withSecrets())))
  })

  describe("paths", () => {
    const control = [
      "/extensions/github/webhook",
      "/extensions/github/webhook//",
      "/extensions/github/setup/",
      "/extensions/github/install/abc/",
      "/extensions/github/search/acme/1/"
    ]
    for (const path of control) {
      it.effect(`${path} → Control`, () =>
        Effect.gen(function*() {
          const outcome = yield* Effect.flatMap(signed(path, body({ id: 1000 })), route)
          assert.strictEqual(outcome.decision._tag, "Control")
        }).pipe(Effect.provide(withSecrets())))
    }
    it.effect("the method is not checked; the query is ignored by the matcher", () =>
      Effect.gen(function*() {
        const req = yield* signed(`${PATH}?x=1`, body({ id: 1000 }))
        assertAccepted(yield* handle({ ...req, method: "PUT" }))
      }).pipe(Effect.provide(withSecrets())))
  })
})

describe("github_enterprise webhook/", () => {
  const host = { "x-github-enterprise-host": GHE_HOST }
  it.effect("identified by <host>:<installation.id>, mailbox github_enterprise:<region>:<id>:<bucket>:<event>", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post(GHE_PATH, body({ id: 1000 }), { headers: host }))
      assert.deepStrictEqual(yield* stored, [["github_enterprise:eu:110:67:issues", "eu", 1]])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("no host header → 400 (even when the bare installation id is an integration)", () =>
    Effect.gen(function*() {
      assertError(yield* post(GHE_PATH, body({ id: 1000 })), 400, "missing_identity")
      assertError(yield* post(GHE_PATH, body({ id: 1000 }), { headers: { "x-github-enterprise-host": " " } }), 400)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("no installation / not JSON → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(GHE_PATH, "nope", { headers: host }), 400, "missing_identity")
      assertError(yield* post(GHE_PATH, "{}", { headers: host }), 400, "missing_identity")
    }).pipe(Effect.provide(withSecrets())))

  it.effect("no integration → 400; no active organization → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(GHE_PATH, body({ id: 3 }), { headers: host }), 400, "integration_not_found")
      assertError(
        yield* post(GHE_PATH, body({ id: 1000 }), { headers: { "x-github-enterprise-host": "other.example" } }),
        400,
        "integration_not_found"
      )
      assertError(yield* post(GHE_PATH, body({ id: 2000 }), { headers: host }), 400, "no_active_organization")
    }).pipe(Effect.provide(withSecrets())))

  it.effect("bad or missing signature → 401 (the GHE app secret, not github's)", () =>
    Effect.gen(function*() {
      assertError(yield* post(GHE_PATH, body({ id: 1000 }), { headers: host, secret: null }), 401)
      assertError(yield* post(GHE_PATH, body({ id: 1000 }), { headers: host, secret: "wrong" }), 401)
    }).pipe(Effect.provide(testLayer(directoryJson, { github: "other", github_enterprise: APP_SECRET }))))

  it.effect("installation events → Control; dropped events → 202", () =>
    Effect.gen(function*() {
      assertControl(yield* post(GHE_PATH, body({ id: 1000 }), { headers: host, event: "installation" }))
      const before = yield* droppedCount("github_enterprise", "check_suite")
      assertAccepted(
        yield* post(GHE_PATH, body({ id: 1000 }, { action: "requested" }), { headers: host, event: "check_suite" })
      )
      assert.strictEqual((yield* droppedCount("github_enterprise", "check_suite")) - before, 1)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withSecrets())))

  it.effect("webhook without trailing slash → Control", () =>
    Effect.gen(function*() {
      const outcome = yield* route(request("/extensions/github-enterprise/webhook", { body: "{}" }))
      assert.strictEqual(outcome.decision._tag, "Control")
    }).pipe(Effect.provide(withSecrets())))
})
