import { Memory } from "@cellgate/adapters"
import { IntegrationId, resolveRegions } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { directory, directoryJson, expectedResolution, shuffled } from "../support/Directory.js"

const resolveIn = (json: Parameters<typeof directory>[0], integrationId: number) =>
  resolveRegions(IntegrationId.make(integrationId)).pipe(
    Effect.map((r) => ({ organizations: [...r.organizations], regions: r.regions.map((x) => x.name) })),
    Effect.either,
    Effect.provide(Memory.directoryLayer(directory(json)))
  )

describe("resolveRegions", () => {
  it.effect.prop(
    "is exactly the regions of the active organizations, sorted and unique, whatever the row order",
    [directoryJson(false), fc.integer({ min: 1, max: 4 }), fc.nat()],
    ([json, integrationId, seed]) =>
      Effect.gen(function*() {
        const expected = expectedResolution(json, integrationId)
        const a = yield* resolveIn(json, integrationId)
        const b = yield* resolveIn(shuffled(json, seed), integrationId)
        assert.deepStrictEqual(a, b)
        if (expected.missing !== undefined) {
          assert.strictEqual(a._tag, "Left")
          if (a._tag === "Left") {
            assert.strictEqual(a.left._tag, "RegionNotFound")
            // the first unknown name in sorted order is the one reported
            if (a.left._tag === "RegionNotFound") assert.strictEqual(a.left.region, expected.missing)
          }
          return
        }
        assert.strictEqual(a._tag, "Right")
        if (a._tag === "Right") {
          assert.deepStrictEqual(a.right.regions, expected.regions)
          assert.deepStrictEqual(a.right.organizations, expected.organizations)
          assert.deepStrictEqual(a.right.regions, [...new Set(a.right.regions)].sort())
        }
      }),
    { fastCheck: { numRuns: 300 } }
  )

  it.effect("an integration without active links resolves to nothing", () =>
    Effect.gen(function*() {
      const r = yield* resolveIn({
        regions: [{ name: "us", url: "http://us.test" }],
        organizations: [{ id: 1, slug: "a", region: "us" }],
        integrations: [{ id: 1, provider: "jira_server", externalId: "x" }],
        organizationIntegrations: [{ organizationId: 1, integrationId: 1, status: "disabled" }]
      }, 1)
      assert.deepStrictEqual(r._tag === "Right" ? r.right : r.left, { organizations: [], regions: [] })
    }))

  it.effect("a link to a missing organization contributes nothing", () =>
    Effect.gen(function*() {
      const r = yield* resolveIn({
        regions: [{ name: "eu", url: "http://eu.test" }, { name: "us", url: "http://us.test" }],
        organizations: [{ id: 1, slug: "a", region: "us" }],
        integrations: [{ id: 1, provider: "jira_server", externalId: "x" }],
        organizationIntegrations: [{ organizationId: 1, integrationId: 1 }, { organizationId: 99, integrationId: 1 }]
      }, 1)
      assert.deepStrictEqual<unknown>(r._tag === "Right" ? r.right : r.left, { organizations: [1], regions: ["us"] })
    }))
})
