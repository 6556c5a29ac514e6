// Parity with the reference's newest code (docs/routing.md#shedding), at the gateway: shedding of Enqueue decisions,
// GitHub mailboxes by event type, plugin paths, and the Jira Cloud issue page falling back to the control side.
import { Memory } from "@cellgate/adapters"
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import {
  ControlHandler,
  GitHub,
  JiraCloud,
  Metrics,
  Providers,
  RegionTransportError,
  ShedRules,
  StoreUnavailable
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Metric } from "effect"
import * as Jose from "jose"
import {
  assertAccepted,
  assertControl,
  assertError,
  directory,
  handle,
  request,
  route,
  stored,
  testServices,
  text
} from "../providers/support.js"
import { withGateway } from "../support/Gateway.js"

const directoryJson = {
  regions: [{ name: "us", url: "http://us.test" }, { name: "eu", url: "http://eu.test" }],
  organizations: [
    { id: 1, slug: "acme-us", region: "us" },
    { id: 2, slug: "acme-eu", region: "eu" },
    { id: 5, slug: "lost", region: "mars" }
  ],
  integrations: [
    { id: 100, provider: "github", externalId: "1000" },
    { id: 101, provider: "github", externalId: "1001" },
    { id: 130, provider: "jira", externalId: "jira-client", metadata: { sharedSecret: "garden" } }
  ],
  organizationIntegrations: [
    { organizationId: 1, integrationId: 100 },
    { organizationId: 2, integrationId: 101 },
    { organizationId: 1, integrationId: 130 }
  ]
}

const GITHUB = "/extensions/github/webhook/"
const githubBody = (installation: number, action = "opened") =>
  JSON.stringify({ action, installation: { id: installation }, repository: { id: 1267 } })
const github = (event: string | undefined, installation = 1000, action?: string): WebhookRequest =>
  request(GITHUB, {
    body: githubBody(installation, action),
    headers: event === undefined ? {} : { "x-github-event": event }
  })

const mailboxesOf = (response: WebhookResponse, boxes: ReadonlyArray<ReadonlyArray<string | number>>) => {
  assertAccepted(response)
  return boxes.map((b) => b[0])
}

describe("GitHub mailboxes by event type (§8.5)", () => {
  it.effect("the event is the mailbox's last part: a check_run flood never sits in front of a pull_request", () =>
    Effect.gen(function*() {
      assertAccepted(yield* handle(github("check_run", 1000, "completed")))
      assertAccepted(yield* handle(github("pull_request")))
      assertAccepted(yield* handle(github(undefined)))
      assert.deepStrictEqual(yield* stored, [
        ["github:us:100:67", "us", 1],
        ["github:us:100:67:check_run", "us", 1],
        ["github:us:100:67:pull_request", "us", 1]
      ])
    }).pipe(Effect.provide(withGateway(testServices(directoryJson)))))

  it.effect("GitHub Enterprise alike", () =>
    Effect.gen(function*() {
      const req = request("/extensions/github-enterprise/webhook/", {
        body: githubBody(7),
        headers: { "x-github-event": "push", "x-github-enterprise-host": "ghe.example" }
      })
      const outcome = yield* route(req)
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual(outcome.decision.targets.map((t) => t.mailbox), ["github_enterprise:us:110:67:push"])
    }).pipe(Effect.provide(withGateway(testServices({
      ...directoryJson,
      integrations: [{ id: 110, provider: "github_enterprise", externalId: "ghe.example:7" }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 110 }]
    })))))

  const CONTROL_OR_DROPPED = new Set(["installation", "installation_repositories", "check_run", "check_suite"])
  const events = fc.oneof(
    fc.stringMatching(/^[a-z_]{1,64}$/),
    fc.string({ maxLength: 80 }),
    fc.constantFrom("Push", "push ", "a".repeat(65), "pull-request", "push:x", "é", "")
  ).filter((e) => !CONTROL_OR_DROPPED.has(e))

  it.effect.prop(
    "the event takes part only when it matches [a-z_]{1,64} (it is the sender's header)",
    [events],
    ([event]) =>
      Effect.gen(function*() {
        const outcome = yield* route(github(event))
        assert.strictEqual(outcome.decision._tag, "Enqueue")
        if (outcome.decision._tag !== "Enqueue") return
        const expected = /^[a-z_]{1,64}$/.test(event) ? `github:us:100:67:${event}` : "github:us:100:67"
        assert.deepStrictEqual(outcome.decision.targets.map((t) => t.mailbox), [expected])
        assert.strictEqual(GitHub.eventPart(event), /^[a-z_]{1,64}$/.test(event) ? event : undefined)
      }).pipe(Effect.provide(withGateway(testServices(directoryJson))))
  )
})

describe("plugin paths (§8.5)", () => {
  for (const kind of ["github", "bitbucket"]) {
    it.effect(`/plugins/${kind}/organizations/<org id>/webhook/ → Enqueue to the organization's region`, () =>
      Effect.gen(function*() {
        const req = request(`/plugins/${kind}/organizations/2/webhook/?x=1`, { body: "{}" })
        const outcome = yield* route(req)
        assert.strictEqual(outcome.provider, "plugins")
        assert.strictEqual(outcome.decision._tag, "Enqueue")
        if (outcome.decision._tag !== "Enqueue") return
        assert.strictEqual(outcome.decision.provider, "plugins")
        assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [{
          region: "eu",
          mailbox: "plugins:eu:2",
          tenant: "o:2"
        }])
        assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [2])
        assert.deepStrictEqual(mailboxesOf(yield* handle(req), yield* stored), ["plugins:eu:2"])
      }).pipe(Effect.provide(withGateway(testServices(directoryJson)))))
  }

  it.effect("unknown organization → 400; its region not in the directory → Control; nothing stored", () =>
    Effect.gen(function*() {
      assertError(yield* handle(request("/plugins/github/organizations/9/webhook/")), 400, "organization_not_found")
      assertControl(yield* handle(request("/plugins/bitbucket/organizations/5/webhook/")))
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withGateway(testServices(directoryJson)))))

  it.effect("any other /plugins/… path is Control (an org id that is not digits included)", () =>
    Effect.gen(function*() {
      for (
        const path of [
          "/plugins/",
          "/plugins/setup",
          "/plugins/servlet/setup",
          "/plugins/gitlab/organizations/1/webhook/",
          "/plugins/github/organizations/1/webhook",
          "/plugins/github/organizations/1/webhook/x/",
          "/plugins/github/organizations/01/webhook/",
          "/plugins/github/organizations/-1/webhook/",
          "/plugins/github/organizations/1e3/webhook/",
          "/plugins/github/organizations/%31/webhook/x",
          "/plugins/github/organizations/%2e%2e%2f1/webhook/",
          "/plugins/github/organizations/99999999999999999999/webhook/",
          "/extensions/plugins/github/organizations/1/webhook/"
        ]
      ) {
        const outcome = yield* route(request(path))
        assert.strictEqual(outcome.decision._tag, "Control", path)
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withGateway(testServices(directoryJson)))))
})

describe("shedding (§8.4)", () => {
  const shedCount = (provider: string) => Metric.value(Metrics.shedTotal(provider)).pipe(Effect.map((s) => s.count))
  const withRules = (rules: ReadonlyArray<ShedRules.Rule>) =>
    withGateway(Layer.merge(testServices(directoryJson), ShedRules.layerFixed(rules)))

  it.effect("a matching Enqueue → 429 shed, Retry-After: 60, nothing stored, counted; explain's route shows it", () =>
    Effect.gen(function*() {
      const before = yield* shedCount("github")
      const outcome = yield* route(github("push"))
      assert.strictEqual(outcome.reason, "shed")
      assert.strictEqual(outcome.decision._tag, "Respond")
      if (outcome.decision._tag === "Respond") {
        assert.strictEqual(outcome.decision.status, 429)
        assert.strictEqual(outcome.decision.reason, "shed")
      }
      const response = yield* handle(github("push"))
      assertError(response, 429, "shed")
      assert.strictEqual(response.headers["retry-after"], "60")
      assert.deepStrictEqual(yield* stored, [])
      assert.strictEqual((yield* shedCount("github")) - before, 1)
      // another integration of the provider is not shed; nor is anything that is not stored
      assertAccepted(yield* handle(github("push", 1001)))
      assertError(yield* handle(github("push", 4242)), 400)
    }).pipe(Effect.provide(withRules([{ provider: "github", integrationId: 100 as never }]))))

  it.effect("a provider-wide rule sheds every integration of it, plugin paths under the provider plugins", () =>
    Effect.gen(function*() {
      assertError(yield* handle(github("push", 1001)), 429, "shed")
      assertError(yield* handle(request("/plugins/github/organizations/1/webhook/")), 429, "shed")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(withRules([{ provider: "github" }, { provider: "plugins" }]))))

  const rule = fc.record({
    provider: fc.constantFrom("github", "gitlab", "plugins"),
    integrationId: fc.option(fc.constantFrom(100, 101, 7), { nil: undefined })
  }).map((r) => (r.integrationId === undefined ? { provider: r.provider } : r) as ShedRules.Rule)

  it.effect.prop("shed exactly when a rule names the provider, and the integration or none", [
    fc.array(rule, { maxLength: 4 }),
    fc.constantFrom(1000, 1001)
  ], ([rules, installation]) =>
    Effect.gen(function*() {
      const integration = installation === 1000 ? 100 : 101
      const expected = rules.some((r) =>
        r.provider === "github" && (r.integrationId === undefined || r.integrationId === integration)
      )
      const response = yield* handle(github("push", installation))
      assert.strictEqual(response.status, expected ? 429 : 202)
    }).pipe(Effect.provide(withRules(rules))))

  it.live("the store's rules are read again while the gateway runs: add, then remove", () =>
    Effect.gen(function*() {
      const store = yield* ShedRules.ShedRules
      assertAccepted(yield* handle(github("push")))
      assert.isTrue(yield* store.add({ provider: "github", integrationId: 100 as never }))
      assert.isFalse(yield* store.add({ provider: "github", integrationId: 100 as never }))
      yield* Effect.sleep("150 millis")
      assertError(yield* handle(github("push")), 429, "shed")
      assert.isTrue(yield* store.remove({ provider: "github", integrationId: 100 as never }))
      yield* Effect.sleep("150 millis")
      assertAccepted(yield* handle(github("push")))
    }).pipe(
      Effect.provide(withGateway(
        Layer.provideMerge(ShedRules.layerInForce([], { refreshMs: 50 }), testServices(directoryJson))
      ))
    ))

  it.effect("configuration rules are always in force; a store that cannot be read keeps the last rules", () =>
    Effect.gen(function*() {
      assertError(yield* handle(github("push", 1001)), 429, "shed")
    }).pipe(Effect.provide(withGateway(
      Layer.provideMerge(
        ShedRules.layerInForce([{ provider: "github", integrationId: 101 as never }]),
        Layer.merge(
          testServices(directoryJson),
          Layer.succeed(ShedRules.ShedRules, {
            ...ShedRules.makeMemory(),
            list: Effect.fail(new StoreUnavailable({ operation: "ShedRules.list" }))
          })
        )
      )
    ))))
})

describe("Jira Cloud issue/<key>/ falls back to the control side (§8.5)", () => {
  const ISSUE = "/extensions/jira/issue/APP-123/"
  const signedIssue = Effect.gen(function*() {
    const qsh = yield* JiraCloud.queryStringHash("GET", ISSUE)
    const now = Math.floor(Date.now() / 1000)
    const token = yield* Effect.promise(() =>
      new Jose.SignJWT({ iss: "jira-client", iat: now, exp: now + 600, qsh }).setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode("garden"))
    )
    return request(ISSUE, { method: "GET", headers: { authorization: `JWT ${token}` } })
  })
  const controlSide = Layer.succeed(ControlHandler.ControlHandler, {
    handle: () => Effect.succeed({ status: 200, headers: {}, body: "control side" })
  })
  const services = (kind: "timeout" | "connection" | "answer") =>
    withGateway(Layer.mergeAll(
      Memory.storeLayer(directory(directoryJson)),
      Providers.layer(),
      controlSide,
      Memory.recordingRegionClient((region) =>
        kind === "answer"
          ? Effect.succeed({ status: 503, headers: {}, body: new TextEncoder().encode("region down") })
          : Effect.fail(new RegionTransportError({ region: region.name, kind, detail: "test" }))
      )
    ))

  for (const kind of ["timeout", "connection"] as const) {
    it.live(`a ${kind} of the forward → the control side answers`, () =>
      Effect.gen(function*() {
        const req = yield* signedIssue
        const outcome = yield* route(req)
        assert.strictEqual(outcome.decision._tag, "Forward")
        const response = yield* handle(req)
        assert.strictEqual(response.status, 200)
        assert.strictEqual(text(response.body as Uint8Array | string), "control side")
        const sent = yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
        assert.deepStrictEqual(sent.map((s) => s.region), ["us"])
      }).pipe(Effect.provide(services(kind))))
  }

  it.live("an answer of the region (even a 503) is relayed, not replaced", () =>
    Effect.gen(function*() {
      const response = yield* handle(yield* signedIssue)
      assert.strictEqual(response.status, 503)
      assert.strictEqual(text(response.body as Uint8Array | string), "region down")
    }).pipe(Effect.provide(services("answer"))))
})
