/**
 * Resolution: integration → active organizations → regions (ROUTING.md §3).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Region } from "./Domain.js"
import { RegionNotFound } from "./Errors.js"
import type { IntegrationId, OrganizationId, RegionName } from "./Ids.js"
import { OrgRepo, RegionDirectory } from "./Services.js"

/**
 * The organizations and regions an integration resolves to: organization ids ascending, regions sorted by name and
 * unique.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolution {
  readonly organizations: ReadonlyArray<OrganizationId>
  readonly regions: ReadonlyArray<Region>
}

const ascending = (a: number, b: number) => a - b
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Active organization links → existing organizations (missing rows skipped) → their regions, sorted by name and
 * deduplicated. A region name the directory does not know fails with `RegionNotFound`.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolveRegions = Effect.fn("resolveRegions")(function*(integrationId: IntegrationId) {
  const orgRepo = yield* OrgRepo
  const directory = yield* RegionDirectory
  const linked = yield* orgRepo.activeOrganizationIds(integrationId)
  if (linked.length === 0) return { organizations: [], regions: [] } satisfies Resolution
  const organizations = yield* orgRepo.byIds(Array.from(new Set(linked)))
  const orgIds = Array.from(new Set(organizations.map((o) => o.id))).sort(ascending)
  const names = Array.from(new Set(organizations.map((o) => o.region))).sort(byName)
  const regions: Array<Region> = []
  for (const name of names) {
    const region = yield* directory.byName(name)
    if (Option.isNone(region)) return yield* new RegionNotFound({ region: name })
    regions.push(region.value)
  }
  return { organizations: orgIds, regions } satisfies Resolution
})

/**
 * @since 0.1.0
 * @category resolution
 */
export const regionNames = (resolution: Resolution): ReadonlyArray<RegionName> => resolution.regions.map((r) => r.name)
