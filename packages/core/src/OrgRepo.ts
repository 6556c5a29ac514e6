/**
 * The organizations port: organizations and their links to integrations. Applications implement it (or use a
 * store's layer); keep its method shapes stable.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"
import type { Directory, Organization } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import type { IntegrationId, OrganizationId } from "./Ids.js"
import * as DirectoryIndex from "./internal/directoryIndex.js"

/**
 * Organizations and their links to integrations. A store that cannot be read fails with `StoreUnavailable`.
 *
 * @since 0.1.0
 * @category tags
 */
export class OrgRepo extends Context.Tag("@cellgate/core/OrgRepo")<OrgRepo, {
  /** Ids of the organizations with an `active` link to the integration (any order, possibly repeated). */
  readonly activeOrganizationIds: (
    integrationId: IntegrationId
  ) => Effect.Effect<ReadonlyArray<OrganizationId>, StoreUnavailable>
  /** The organizations that exist among `ids` (missing ids are skipped; any order). */
  readonly byIds: (ids: ReadonlyArray<OrganizationId>) => Effect.Effect<ReadonlyArray<Organization>, StoreUnavailable>
}>() {}

/**
 * The organizations and links of `directory`, in memory (fixed: `DirectoryStore.layerMemory` gives the directory
 * ports over one directory that an import replaces).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (directory: Directory): Layer.Layer<OrgRepo> =>
  Layer.sync(OrgRepo, () => {
    const index = DirectoryIndex.make(directory)
    return OrgRepo.of(fromIndex(() => index))
  })

/**
 * `OrgRepo` over the memory index `get()` returns (used by the memory layers; not for applications).
 *
 * @since 0.2.0
 * @category internal
 */
export const fromIndex = (get: () => DirectoryIndex.DirectoryIndex): OrgRepo["Type"] => ({
  activeOrganizationIds: (id) => Effect.sync(() => get().activeLinks.get(id) ?? []),
  byIds: (ids) =>
    Effect.sync(() => {
      const organizations = get().organizations
      return ids.flatMap((id) => {
        const org = organizations.get(id)
        return org === undefined ? [] : [org]
      })
    })
})
