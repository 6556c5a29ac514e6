/**
 * The directory import port: replaces the whole directory in one transaction (`cellgate serve`'s start-up import,
 * `cellgate import`).
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"
import type { Directory } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { fromIndex as integrationsFromIndex, IntegrationRepo } from "./IntegrationRepo.js"
import * as DirectoryIndex from "./internal/directoryIndex.js"
import { fromIndex as orgsFromIndex, OrgRepo } from "./OrgRepo.js"
import { fromIndex as regionsFromIndex, RegionDirectory } from "./RegionDirectory.js"
import * as ShedRules from "./ShedRules.js"

/**
 * Replaces the whole directory (regions, organizations, integrations, links) in one transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class DirectoryStore extends Context.Tag("@cellgate/core/DirectoryStore")<DirectoryStore, {
  readonly importDirectory: (directory: Directory) => Effect.Effect<void, StoreUnavailable>
}>() {}

/**
 * `IntegrationRepo`, `OrgRepo`, `RegionDirectory` and `DirectoryStore` over one in-memory directory: an import
 * replaces what the three directory ports answer at once. With them, the store's shed rules (`ShedRules`, in
 * memory; an import leaves them).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (
  directory: Directory
): Layer.Layer<IntegrationRepo | OrgRepo | RegionDirectory | DirectoryStore | ShedRules.ShedRules> =>
  Layer.effectContext(Effect.sync(() => {
    let index = DirectoryIndex.make(directory)
    const get = () => index
    return Context.make(IntegrationRepo, IntegrationRepo.of(integrationsFromIndex(get))).pipe(
      Context.add(OrgRepo, OrgRepo.of(orgsFromIndex(get))),
      Context.add(RegionDirectory, RegionDirectory.of(regionsFromIndex(get))),
      Context.add(ShedRules.ShedRules, ShedRules.makeMemory()),
      Context.add(
        DirectoryStore,
        DirectoryStore.of({
          importDirectory: (next) =>
            Effect.sync(() => {
              index = DirectoryIndex.make(next)
            })
        })
      )
    )
  }))
