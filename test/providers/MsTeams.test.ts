import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  assertAccepted,
  assertControl,
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

const message = fixture("msteams", "message_mention.json")
const memberAdded = fixture("msteams", "conversation_update_team_member_added.json")
const TEAM: string = JSON.parse(message).channelData.team.id

const edit = (json: string, change: (o: any) => void) => {
  const o = JSON.parse(json)
  change(o)
  return JSON.stringify(o)
}

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 150, provider: "msteams", externalId: TEAM },
    { id: 151, provider: "msteams", externalId: "team-no-orgs" },
    { id: 152, provider: "msteams", externalId: "team-disabled", status: "disabled" },
    { id: 153, provider: "slack", externalId: "T1" }
  ],
  organizationIntegrations: [
    { organizationId: 3, integrationId: 150 },
    { organizationId: 1, integrationId: 150 },
    { organizationId: 4, integrationId: 150 },
    { organizationId: 2, integrationId: 152 },
    { organizationId: 2, integrationId: 153 }
  ]
}
const TestLive = () => testLayer(directoryJson)

const PATH = "/extensions/msteams/webhook/"
const post = (body: string) => handle(request(PATH, { body }))
const decision = (body: string) => Effect.map(route(request(PATH, { body })), (o) => o.decision._tag)

describe("msteams webhook/", () => {
  it.effect("a message: channelData.team.id → integration, one payload per region, msteams:<region>:<id>, 202", () =>
    Effect.gen(function*() {
      const outcome = yield* route(request(PATH, { body: message }))
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "de", mailbox: "msteams:de:150" },
        { region: "us", mailbox: "msteams:us:150" }
      ])
      assertAccepted(yield* post(message))
      assert.deepStrictEqual(yield* stored, [["msteams:de:150", "de", 1], ["msteams:us:150", "us", 1]])
    }).pipe(Effect.provide(TestLive())))

  it.effect("a card action: value.payload.integrationId (the internal id) wins over the team id", () =>
    Effect.gen(function*() {
      const card = edit(message, (o) => {
        o.value = { payload: { integrationId: 150, actionType: "resolve" } }
        o.channelData.team.id = "team-no-orgs"
      })
      assertAccepted(yield* post(card))
      const asString = edit(card, (o) => (o.value.payload.integrationId = "150"))
      assertAccepted(yield* post(asString))
      assert.deepStrictEqual(yield* stored, [["msteams:de:150", "de", 2], ["msteams:us:150", "us", 2]])
    }).pipe(Effect.provide(TestLive())))

  describe("installation traffic → Control", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["conversationUpdate with membersAdded (the corpus activity)", memberAdded],
      ["type missing", edit(message, (o) => delete o.type)],
      ["installationUpdate", edit(message, (o) => (o.type = "installationUpdate"))]
    ]
    for (const [name, body] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          assert.strictEqual(yield* decision(body), "Control")
          assertControl(yield* post(body))
          assert.deepStrictEqual(yield* stored, [])
        }).pipe(Effect.provide(TestLive())))
    }
    it.effect("conversationUpdate without membersAdded (or with []) is routed", () =>
      Effect.gen(function*() {
        assert.strictEqual(yield* decision(edit(memberAdded, (o) => delete o.membersAdded)), "Enqueue")
        assert.strictEqual(yield* decision(edit(memberAdded, (o) => (o.membersAdded = []))), "Enqueue")
      }).pipe(Effect.provide(TestLive())))
  })

  it.effect("no usable id → Control", () =>
    Effect.gen(function*() {
      for (
        const body of [
          "not json",
          "{}",
          edit(message, (o) => delete o.channelData),
          edit(message, (o) => (o.channelData.team = { id: "" })),
          edit(message, (o) => {
            delete o.channelData.team
            o.value = { payload: { integrationId: "abc" } }
          })
        ]
      ) {
        assert.strictEqual(yield* decision(body), "Control", body.slice(0, 40))
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("no integration (unknown team, unknown or disabled id, another provider's id) → 400", () =>
    Effect.gen(function*() {
      assertError(yield* post(edit(message, (o) => (o.channelData.team.id = "unknown"))), 400, "integration_not_found")
      assertError(yield* post(edit(message, (o) => (o.channelData.team.id = "team-disabled"))), 400)
      assertError(yield* post(edit(message, (o) => (o.value = { payload: { integrationId: 999 } }))), 400)
      assertError(yield* post(edit(message, (o) => (o.value = { payload: { integrationId: 152 } }))), 400)
      assertError(yield* post(edit(message, (o) => (o.value = { payload: { integrationId: 153 } }))), 400)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(TestLive())))

  it.effect("no active organization → 400", () =>
    Effect.gen(function*() {
      const body = edit(message, (o) => (o.channelData.team.id = "team-no-orgs"))
      assertError(yield* post(body), 400, "no_active_organization")
    }).pipe(Effect.provide(TestLive())))

  it.effect("paths: link-identity/…, unlink-identity/…, webhook without slash → Control", () =>
    Effect.gen(function*() {
      for (
        const path of [
          "/extensions/msteams/link-identity/abc/",
          "/extensions/msteams/unlink-identity/abc/",
          "/extensions/msteams/webhook"
        ]
      ) {
        const outcome = yield* route(request(path, { body: message }))
        assert.strictEqual(outcome.decision._tag, "Control", path)
      }
    }).pipe(Effect.provide(TestLive())))
})
