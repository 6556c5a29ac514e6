import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  assertAccepted,
  assertControl,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  testLayer
} from "./support.js"

const push = fixture("bitbucket", "repo_push.json")
const corpusHeaders = JSON.parse(fixture("bitbucket", "repo_push.headers.json"))
const headers = { "x-event-key": corpusHeaders["X-Event-Key"], "user-agent": corpusHeaders["User-Agent"] }

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [{ id: 160, provider: "bitbucket", externalId: "x" }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 160, status: "disabled" }]
}
const TestLive = () => testLayer(directoryJson)

const cases = [
  {
    provider: "bitbucket",
    path: (org: string) => `/extensions/bitbucket/organizations/${org}/webhook/`,
    others: [
      "/extensions/bitbucket/descriptor/",
      "/extensions/bitbucket/installed/",
      "/extensions/bitbucket/uninstalled/",
      "/extensions/bitbucket/search/acme/1/",
      "/extensions/bitbucket/organizations/2/webhook",
      "/extensions/bitbucket/organizations/2/webhook//",
      "/extensions/bitbucket/organizations/2/webhook/9/",
      "/extensions/bitbucket/organizations//webhook/"
    ]
  },
  {
    provider: "bitbucket_server",
    path: (org: string) => `/extensions/bitbucket-server/organizations/${org}/webhook/160/`,
    others: [
      "/extensions/bitbucket-server/search/acme/1/",
      "/extensions/bitbucket-server/organizations/2/webhook/",
      "/extensions/bitbucket-server/organizations/2/webhook/160",
      "/extensions/bitbucket-server/organizations/2/webhook/160//"
    ]
  }
]

for (const { others, path, provider } of cases) {
  describe(`${provider}`, () => {
    it.effect("the organization in the path: its region, mailbox <provider>:<region>:<orgId>, no integration id, 202", () =>
      Effect.gen(function*() {
        const outcome = yield* route(request(path("2"), { body: push, headers }))
        assert.strictEqual(outcome.decision._tag, "Enqueue")
        if (outcome.decision._tag !== "Enqueue") return
        assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
          // keyed by organization: the organization is the tenant (docs/routing.md#fair-adaptive-delivery)
          { region: "eu", mailbox: `${provider}:eu:2`, tenant: "o:2" }
        ])
        assert.strictEqual(outcome.decision.integrationId, undefined)
        assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [2])
        assertAccepted(yield* handle(request(path("2"), { body: push, headers })))
        assertAccepted(yield* handle(request(path("1"), { body: "not even json", headers })))
        assert.deepStrictEqual(yield* stored, [[`${provider}:eu:2`, "eu", 1], [`${provider}:us:1`, "us", 1]])
      }).pipe(Effect.provide(TestLive())))

    it.effect("an unknown organization → Control", () =>
      Effect.gen(function*() {
        for (const org of ["99", "0", "-1", "abc", "1.5", "99999999999999999999"]) {
          const outcome = yield* route(request(path(org), { body: push, headers }))
          assert.strictEqual(outcome.decision._tag, "Control", org)
          assertControl(yield* handle(request(path(org), { body: push, headers })))
        }
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(TestLive())))

    it.effect("an organization whose region is not in the directory → Control", () =>
      Effect.gen(function*() {
        assertControl(yield* handle(request(path("5"), { body: push, headers })))
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(TestLive())))

    for (const other of others) {
      it.effect(`${other} → Control`, () =>
        Effect.gen(function*() {
          const outcome = yield* route(request(other, { body: push, headers }))
          assert.strictEqual(outcome.decision._tag, "Control")
        }).pipe(Effect.provide(TestLive())))
    }
  })
}
