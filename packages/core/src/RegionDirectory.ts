/**
 * The regions port: the regions cellgate delivers to. Applications implement it (or use a store's layer); keep its
 * method shapes stable.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Directory, Region } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import type { RegionName } from "./Ids.js"
import * as DirectoryIndex from "./internal/directoryIndex.js"

/**
 * The regions cellgate delivers to. A store that cannot be read fails with `StoreUnavailable`.
 *
 * @since 0.1.0
 * @category tags
 */
export class RegionDirectory extends Context.Tag("@cellgate/core/RegionDirectory")<RegionDirectory, {
  readonly byName: (name: RegionName) => Effect.Effect<Option.Option<Region>, StoreUnavailable>
  /** Every region, sorted by name. */
  readonly all: Effect.Effect<ReadonlyArray<Region>, StoreUnavailable>
}>() {}

/**
 * The regions of `directory`, in memory (fixed: `DirectoryStore.layerMemory` gives the directory ports over one
 * directory that an import replaces).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (directory: Directory): Layer.Layer<RegionDirectory> =>
  Layer.sync(RegionDirectory, () => {
    const index = DirectoryIndex.make(directory)
    return RegionDirectory.of(fromIndex(() => index))
  })

/**
 * `RegionDirectory` over the memory index `get()` returns (used by the memory layers; not for applications).
 *
 * @since 0.2.0
 * @category internal
 */
export const fromIndex = (get: () => DirectoryIndex.DirectoryIndex): RegionDirectory["Type"] => ({
  byName: (name) => Effect.sync(() => Option.fromNullable(get().regions.get(name))),
  all: Effect.sync(() => get().regionList)
})
