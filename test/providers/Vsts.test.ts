import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
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
  testLayer
} from "./support.js"

const body = fixture("vsts", "workitem_updated.json")
const COLLECTION: string = JSON.parse(body).resourceContainers.collection.id
const SECRET = "vsts-shared-secret"

const withCollection = (id: unknown) => {
  const json = JSON.parse(body)
  json.resourceContainers.collection.id = id
  return JSON.stringify(json)
}

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 140, provider: "vsts", externalId: COLLECTION, metadata: { webhookSecret: SECRET } },
    { id: 141, provider: "vsts", externalId: "no-orgs", metadata: { webhookSecret: SECRET } },
    { id: 142, provider: "vsts", externalId: "open" },
    { id: 143, provider: "vsts", externalId: "disabled", status: "disabled", metadata: { webhookSecret: SECRET } }
  ],
  organizationIntegrations: [
    { organizationId: 2, integrationId: 140 },
    { organizationId: 1, integrationId: 140 },
    { organizationId: 4, integrationId: 142 },
    { organizationId: 1, integrationId: 143 }
  ]
}
const TestLive = () => testLayer(directoryJson)

const PATH = "/extensions/vsts/issue-updated/"
const post = (payload: string, secret: string | null = SECRET, path = PATH) =>
  handle(request(path, { body: payload, headers: secret === null ? {} : { "shared-secret": secret } }))

describe("vsts issue-updated/", () => {
  it.effect("resourceContainers.collection.id + shared-secret: one payload per region, vsts:<region>:<id>, 202", () =>
    Effect.gen(function*() {
      const outcome = yield* route(request(PATH, { body, headers: { "shared-secret": SECRET } }))
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "eu", mailbox: "vsts:eu:140" },
        { region: "us", mailbox: "vsts:us:140" }
      ])
      assert.strictEqual(outcome.decision.integrationId, 140)
      assertAccepted(yield* post(body))
      assert.deepStrictEqual(yield* stored, [["vsts:eu:140", "eu", 1], ["vsts:us:140", "us", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("no collection id → 400", () =>
    Effect.gen(function*() {
      for (
        const payload of ["not json", "[]", "{}", withCollection(undefined), withCollection(42), withCollection("")]
      ) {
        assertError(yield* post(payload), 400, "missing_identity")
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("no integration (unknown or disabled) → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(withCollection("unknown")), 400, "integration_not_found")
      assertError(yield* post(withCollection("disabled")), 400, "integration_not_found")
    }).pipe(Effect.provide(TestLive())))

  it.effect("no active organization → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(withCollection("no-orgs")), 400, "no_active_organization")
    }).pipe(Effect.provide(TestLive())))

  it.effect("a wrong or missing shared-secret → 401, nothing stored", () =>
    Effect.gen(function*() {
      assertError(yield* post(body, "wrong"), 401, "invalid_secret")
      assertError(yield* post(body, null), 401, "invalid_secret")
      assertError(yield* post(body, `${SECRET} `), 401, "invalid_secret")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("an integration without a secret routes unverified", () =>
    Effect.gen(function*() {
      assertAccepted(yield* post(withCollection("open"), null))
      assert.deepStrictEqual(yield* stored, [["vsts:de:142", "de", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("paths: search/…, configure/, issue-updated without slash → Control", () =>
    Effect.gen(function*() {
      for (
        const path of ["/extensions/vsts/search/a/1/", "/extensions/vsts/configure/", "/extensions/vsts/issue-updated"]
      ) {
        const outcome = yield* route(request(path, { body, headers: { "shared-secret": SECRET } }))
        assert.strictEqual(outcome.decision._tag, "Control", path)
      }
    }).pipe(Effect.provide(TestLive())))
})
