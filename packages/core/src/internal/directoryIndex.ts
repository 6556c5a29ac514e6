/**
 * The in-memory index of a `Directory` behind the memory layers of the directory ports (`IntegrationRepo`,
 * `OrgRepo`, `RegionDirectory`, `DirectoryStore`). Not public.
 *
 * @since 0.2.0
 */
import { Array as Arr, Order } from "effect"
import type { Directory, Integration, Organization, Region } from "../Domain.js"
import type { OrganizationId } from "../Ids.js"

/** The directory, indexed. */
export interface DirectoryIndex {
  readonly regions: ReadonlyMap<string, Region>
  /** Every region, by name. */
  readonly regionList: ReadonlyArray<Region>
  readonly organizations: ReadonlyMap<number, Organization>
  readonly integrationsById: ReadonlyMap<number, Integration>
  readonly integrationsByExternal: ReadonlyMap<string, Integration>
  /** integration id → organization ids with an active link */
  readonly activeLinks: ReadonlyMap<number, ReadonlyArray<OrganizationId>>
}

/** The key of `integrationsByExternal`. */
export const externalKey = (provider: string, externalId: string) => `${provider}\u0000${externalId}`

const regionByName: Order.Order<Region> = Order.mapInput(Order.string, (r: Region) => r.name)

/** Indexes a directory. */
export const make = (directory: Directory): DirectoryIndex => {
  const activeLinks = new Map<number, Array<OrganizationId>>()
  for (const link of directory.organizationIntegrations) {
    if (link.status !== "active") continue
    const list = activeLinks.get(link.integrationId) ?? []
    list.push(link.organizationId)
    activeLinks.set(link.integrationId, list)
  }
  const regions = new Map(directory.regions.map((r) => [r.name, r]))
  return {
    regions,
    regionList: Arr.sort(regions.values(), regionByName),
    organizations: new Map(directory.organizations.map((o) => [o.id, o])),
    integrationsById: new Map(directory.integrations.map((i) => [i.id, i])),
    integrationsByExternal: new Map(directory.integrations.map((i) => [externalKey(i.provider, i.externalId), i])),
    activeLinks
  }
}
