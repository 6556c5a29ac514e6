import { GitLab, JiraServer, Metrics, Outbox, VolumeGate } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import { withGateway } from "../support/Gateway.js"
import {
  assertAccepted,
  assertError,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  testLayer,
  testServices
} from "./support.js"

const headers = JSON.parse(fixture("gitlab", "headers.example.json"))
const push = fixture("gitlab", "push.json")
const mergeRequest = fixture("gitlab", "merge_request_opened.json")
const TOKEN: string = headers["push.json"]["X-Gitlab-Token"] // example.gitlab.com:group-x:secret-token-value

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    {
      id: 120,
      provider: "gitlab",
      externalId: "example.gitlab.com:group-x",
      metadata: { webhookSecret: "secret-token-value" }
    },
    { id: 121, provider: "gitlab", externalId: "example.gitlab.com:no-orgs", metadata: { webhookSecret: "s" } },
    { id: 122, provider: "gitlab", externalId: "example.gitlab.com:open" },
    {
      id: 123,
      provider: "gitlab",
      externalId: "example.gitlab.com:off",
      status: "disabled",
      metadata: { webhookSecret: "s" }
    },
    { id: 124, provider: "jira_server", externalId: "example.gitlab.com:jira", metadata: { webhookSecret: "s" } }
  ],
  organizationIntegrations: [
    { organizationId: 2, integrationId: 120 },
    { organizationId: 1, integrationId: 120 },
    { organizationId: 3, integrationId: 120 },
    { organizationId: 4, integrationId: 121, status: "pending_deletion" },
    { organizationId: 4, integrationId: 122 },
    { organizationId: 1, integrationId: 123 },
    { organizationId: 1, integrationId: 124 }
  ]
}

const PATH = "/extensions/gitlab/webhook/"
const post = (token: string | undefined, body = push, path = PATH) =>
  handle(
    request(path, {
      body,
      headers: {
        "x-gitlab-event": "Push Hook",
        ...(token === undefined ? {} : { "x-gitlab-token": token })
      }
    })
  )

const TestLive = () => testLayer(directoryJson)

describe("gitlab webhook/", () => {
  it.effect("a valid token: one payload per region (sorted), mailbox gitlab:<region>:<id>, 202", () =>
    Effect.gen(function*() {
      const outcome = yield* route(request(PATH, { body: push, headers: { "x-gitlab-token": TOKEN } }))
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "eu", mailbox: "gitlab:eu:120" },
        { region: "us", mailbox: "gitlab:us:120" }
      ])
      assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [1, 2, 3])
      assertAccepted(yield* post(TOKEN))
      assertAccepted(yield* post(TOKEN, mergeRequest))
      assert.deepStrictEqual(yield* stored, [["gitlab:eu:120", "eu", 2], ["gitlab:us:120", "us", 2]])
      const [first] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("gitlab:eu:120", 1))
      assert.strictEqual(new TextDecoder().decode(first!.body), push)
      assert.strictEqual(first!.integrationId, 120)
    }).pipe(Effect.provide(TestLive())))

  it.effect("no X-Gitlab-Token → 400 with GitLab's message", () =>
    Effect.gen(function*() {
      assertError(yield* post(undefined), 400, "missing_token", GitLab.MISSING_TOKEN)
      assertError(yield* post(""), 400, "missing_token", GitLab.MISSING_TOKEN)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  for (
    const token of ["secret-token-value", "example.gitlab.com:secret", "a:b:c:d", "example.gitlab.com:group-x:s:x"]
  ) {
    it.effect(`a token that is not three ':' parts (${token}) → 400 malformed`, () =>
      Effect.gen(function*() {
        assertError(yield* post(token), 400, "malformed_token", GitLab.MALFORMED_TOKEN)
      }).pipe(Effect.provide(TestLive())))
  }

  it.effect("no integration (unknown, disabled, or another provider's) → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post("example.gitlab.com:nobody:s"), 400, "integration_not_found")
      assertError(yield* post("example.gitlab.com:off:s"), 400, "integration_not_found")
      assertError(yield* post("example.gitlab.com:jira:s"), 400, "integration_not_found")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("no active organization → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post("example.gitlab.com:no-orgs:s"), 400, "no_active_organization")
    }).pipe(Effect.provide(TestLive())))

  it.effect("a wrong secret → 401, nothing stored", () =>
    Effect.gen(function*() {
      assertError(yield* post("example.gitlab.com:group-x:wrong"), 401, "invalid_secret")
      assertError(yield* post("example.gitlab.com:group-x:"), 401, "invalid_secret")
      assertError(yield* post("example.gitlab.com:group-x:secret-token-valuE"), 401, "invalid_secret")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("an integration without a secret routes unverified", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post("example.gitlab.com:open:anything"))
      assert.deepStrictEqual(yield* stored, [["gitlab:de:122", "de", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("the body is not parsed for routing: a non-JSON body with a valid token is stored as is", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post(TOKEN, "not json"))
      assert.deepStrictEqual(yield* stored, [["gitlab:eu:120", "eu", 1], ["gitlab:us:120", "us", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("under the volume gate (the Jira Server policy), mailboxes gain :<project.id mod 100>", () =>
    Effect.gen(function*() {
      const policies: Array<unknown> = []
      const keys: Array<string> = []
      const gateOn = Layer.succeed(
        VolumeGate.VolumeGate,
        VolumeGate.VolumeGate.of({
          hit: (key, _now, policy) =>
            Effect.sync(() => {
              keys.push(key)
              policies.push(policy)
              return { bucketed: true, switched: keys.length === 1 }
            })
        })
      )
      const before = (yield* Metric.value(Metrics.orderingRelaxedTotal("bucketing_switch"))).count
      const run = Effect.gen(function*() {
        assertAccepted(yield* post(TOKEN))
        assertAccepted(yield* post(TOKEN, JSON.stringify({ project: { id: "12345" } })))
        assertAccepted(yield* post(TOKEN, JSON.stringify({ object_kind: "push" })))
        return yield* stored
      })
      const boxes = yield* run.pipe(Effect.provide(withGateway(Layer.merge(testServices(directoryJson), gateOn))))
      assert.deepStrictEqual(boxes, [
        ["gitlab:eu:120", "eu", 1],
        ["gitlab:eu:120:15", "eu", 1],
        ["gitlab:eu:120:45", "eu", 1],
        ["gitlab:us:120", "us", 1],
        ["gitlab:us:120:15", "us", 1],
        ["gitlab:us:120:45", "us", 1]
      ])
      assert.deepStrictEqual(keys, ["gitlab:120", "gitlab:120", "gitlab:120"])
      assert.strictEqual(policies[0], JiraServer.volumePolicy)
      const after = (yield* Metric.value(Metrics.orderingRelaxedTotal("bucketing_switch"))).count
      assert.strictEqual(after - before, 1)
    }))

  it.effect("the real gate: more than 3000 webhooks in an hour turns bucketing on", () =>
    Effect.gen(function*() {
      const gate = yield* VolumeGate.VolumeGate
      for (let i = 0; i < JiraServer.volumePolicy.limit; i++) {
        yield* gate.hit("gitlab:120", 0, JiraServer.volumePolicy)
      }
      assertAccepted(yield* post(TOKEN))
      assert.deepStrictEqual(yield* stored, [["gitlab:eu:120:15", "eu", 1], ["gitlab:us:120:15", "us", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("paths: webhook without slash, webhook//, search/… → Control", () =>
    Effect.gen(function*() {
      for (
        const path of ["/extensions/gitlab/webhook", "/extensions/gitlab/webhook//", "/extensions/gitlab/search/1/2/"]
      ) {
        const outcome = yield* route(request(path, { body: push, headers: { "x-gitlab-token": TOKEN } }))
        assert.strictEqual(outcome.decision._tag, "Control", path)
      }
    }).pipe(Effect.provide(TestLive())))
})
