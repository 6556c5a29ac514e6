import { Memory } from "@cellgate/adapters"
import type { RegionName } from "@cellgate/core"
import {
  DirectoryCache,
  DirectoryStore,
  IntegrationId,
  IntegrationRepo,
  OrgRepo,
  RegionDirectory
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, TestClock } from "effect"
import { directory } from "../support/Directory.js"

const v1 = {
  regions: [{ name: "us", url: "http://us.test" }],
  organizations: [{ id: 1, slug: "a", region: "us" }],
  integrations: [{ id: 10, provider: "jira_server", externalId: "x" }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
}
const v2 = { ...v1, organizationIntegrations: [] }

const Live = () => DirectoryCache.layer({ ttlMs: 5_000 }).pipe(Layer.provide(Memory.directoryLayer(directory(v1))))

const links = Effect.flatMap(OrgRepo.OrgRepo, (o) => o.activeOrganizationIds(IntegrationId.make(10)))

describe("DirectoryCache", () => {
  it.effect("reuses answers for the TTL, then reads the store again", () =>
    Effect.gen(function*() {
      let reads = 0
      const counting = Layer.succeed(
        OrgRepo.OrgRepo,
        OrgRepo.OrgRepo.of({
          activeOrganizationIds: () =>
            Effect.sync(() => {
              reads++
              return []
            }),
          byIds: () => Effect.succeed([])
        })
      )
      const cached = DirectoryCache.layer({ ttlMs: 5_000 }).pipe(
        Layer.provide(Layer.merge(Memory.directoryLayer(directory(v1)), counting))
      )
      yield* Effect.gen(function*() {
        yield* links
        yield* links
        assert.strictEqual(reads, 1)
        yield* TestClock.adjust("4 seconds")
        yield* links
        assert.strictEqual(reads, 1)
        yield* TestClock.adjust("2 seconds")
        yield* links
        assert.strictEqual(reads, 2)
      }).pipe(Effect.provide(cached))
    }))

  it.effect("an import through the cache clears it at once", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual<ReadonlyArray<number>>(yield* links, [1])
      const store = yield* DirectoryStore.DirectoryStore
      yield* store.importDirectory(directory(v2))
      assert.deepStrictEqual<ReadonlyArray<number>>(yield* links, [])
      const regions = yield* RegionDirectory.RegionDirectory
      assert.isTrue(Option.isSome(yield* regions.byName("us" as RegionName)))
      const integrations = yield* IntegrationRepo.IntegrationRepo
      assert.isTrue(Option.isSome(yield* integrations.byExternalId("jira_server", "x")))
    }).pipe(Effect.provide(Live())))
})
