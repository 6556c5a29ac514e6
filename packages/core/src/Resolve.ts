/**
 * Resolution: integration → active organizations → regions (docs/routing.md#resolution).
 *
 * @since 0.1.0
 */
import { Array as Arr, Effect, Option, Order } from "effect"
import type { Region } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { RegionNotFound } from "./Errors.js"
import type { IntegrationId, OrganizationId, RegionName } from "./Ids.js"
import { OrgRepo } from "./OrgRepo.js"
import { RegionDirectory } from "./RegionDirectory.js"

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

const EMPTY: Resolution = { organizations: [], regions: [] }

/**
 * `resolveRegions` over the ports given (what the gateway's providers use: the ports were looked up once).
 *
 * @since 0.2.0
 * @category resolution
 */
export const resolveWith = Effect.fnUntraced(function*(
  orgRepo: OrgRepo["Type"],
  directory: RegionDirectory["Type"],
  integrationId: IntegrationId
) {
  const linked = yield* orgRepo.activeOrganizationIds(integrationId)
  if (linked.length === 0) return EMPTY
  const organizations = yield* orgRepo.byIds(Array.from(new Set(linked)))
  // sorted, then unique: `dedupeAdjacent` is linear once equal values are neighbours
  const orgIds = Arr.dedupeAdjacent(Arr.sort(organizations.map((o) => o.id), Order.number))
  const names = Arr.dedupeAdjacent(Arr.sort(organizations.map((o) => o.region), Order.string))
  const regions: Array<Region> = []
  for (const name of names) {
    const region = yield* directory.byName(name)
    if (Option.isNone(region)) return yield* new RegionNotFound({ region: name })
    regions.push(region.value)
  }
  return { organizations: orgIds, regions } satisfies Resolution
})

/**
 * Active organization links → existing organizations (missing rows skipped) → their regions, sorted by name and
 * deduplicated. A region name the directory does not know fails with `RegionNotFound`.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolveRegions = (
  integrationId: IntegrationId
): Effect.Effect<Resolution, RegionNotFound | StoreUnavailable, OrgRepo | RegionDirectory> =>
  Effect.flatMap(
    Effect.zip(OrgRepo, RegionDirectory),
    ([orgRepo, directory]) => resolveWith(orgRepo, directory, integrationId)
  )

/**
 * @since 0.1.0
 * @category resolution
 */
export const regionNames = (resolution: Resolution): ReadonlyArray<RegionName> => resolution.regions.map((r) => r.name)
