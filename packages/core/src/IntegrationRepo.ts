/**
 * The integrations port: integrations by id or by (provider, external id). Applications implement it (or use a
 * store's layer); keep its method shapes stable.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Directory, Integration } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import type { IntegrationId } from "./Ids.js"
import * as DirectoryIndex from "./internal/directoryIndex.js"

/**
 * Integrations, by id or by (provider, external id). Returns any status: callers match only `active` ones. A store
 * that cannot be read fails with `StoreUnavailable` (answered 503 `store_unavailable`, `Retry-After: 5`); an
 * implementation that cannot fail keeps `never`.
 *
 * @since 0.1.0
 * @category tags
 */
export class IntegrationRepo extends Context.Tag("@cellgate/core/IntegrationRepo")<IntegrationRepo, {
  readonly byId: (id: IntegrationId) => Effect.Effect<Option.Option<Integration>, StoreUnavailable>
  readonly byExternalId: (
    provider: string,
    externalId: string
  ) => Effect.Effect<Option.Option<Integration>, StoreUnavailable>
}>() {}

/**
 * The integrations of `directory`, in memory (fixed: `DirectoryStore.layerMemory` gives the directory ports over
 * one directory that an import replaces).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (directory: Directory): Layer.Layer<IntegrationRepo> =>
  Layer.sync(IntegrationRepo, () => {
    const index = DirectoryIndex.make(directory)
    return IntegrationRepo.of(fromIndex(() => index))
  })

/**
 * `IntegrationRepo` over the memory index `get()` returns (used by the memory layers; not for applications): read at every call, so a replaced index shows at once.
 *
 * @since 0.2.0
 * @category internal
 */
export const fromIndex = (get: () => DirectoryIndex.DirectoryIndex): IntegrationRepo["Type"] => ({
  byId: (id) => Effect.sync(() => Option.fromNullable(get().integrationsById.get(id))),
  byExternalId: (provider, externalId) =>
    Effect.sync(() =>
      Option.fromNullable(get().integrationsByExternal.get(DirectoryIndex.externalKey(provider, externalId)))
    )
})
