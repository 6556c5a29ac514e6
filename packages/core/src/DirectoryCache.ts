/**
 * A read-through cache in front of the directory services, so that the webhook path does not query the store for
 * the same integration, links, organizations and regions on every request.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer } from "effect"
import { DirectoryStore } from "./DirectoryStore.js"
import { IntegrationRepo } from "./IntegrationRepo.js"
import { OrgRepo } from "./OrgRepo.js"
import { RegionDirectory } from "./RegionDirectory.js"
import { TtlCache } from "./TtlCache.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long an answer is reused (default 5 s): a change made by another process shows within this time. */
  readonly ttlMs?: number
  /** Entries per cache (default 10 000). */
  readonly capacity?: number
}

/**
 * Wraps `IntegrationRepo`, `OrgRepo` and `RegionDirectory` with caches of `ttlMs`, and `DirectoryStore` so that an
 * import through this process clears them at once. Answers (including "not found") are reused for at most `ttlMs`;
 * failures (`StoreUnavailable`) are never cached.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  IntegrationRepo | OrgRepo | RegionDirectory | DirectoryStore,
  never,
  IntegrationRepo | OrgRepo | RegionDirectory | DirectoryStore
> =>
  Layer.effectContext(Effect.gen(function*() {
    const integrations = yield* IntegrationRepo
    const orgs = yield* OrgRepo
    const regions = yield* RegionDirectory
    const store = yield* DirectoryStore
    const ttl = options.ttlMs ?? 5_000
    const capacity = options.capacity ?? 10_000
    const caches: Array<TtlCache<string, unknown>> = []

    // a failed load (`StoreUnavailable`) is not cached: the next call asks the store again
    const cached = <A extends ReadonlyArray<unknown>, B, E>(
      key: (...args: A) => string,
      load: (...args: A) => Effect.Effect<B, E>
    ): (...args: A) => Effect.Effect<B, E> => {
      const cache = new TtlCache<string, B>(capacity)
      caches.push(cache as TtlCache<string, unknown>)
      return (...args) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const k = key(...args)
          const hit = cache.get(k, now)
          if (hit !== undefined) return Effect.succeed(hit)
          return Effect.tap(load(...args), (value) => cache.set(k, value, now + ttl))
        })
    }

    return Context.make(
      IntegrationRepo,
      IntegrationRepo.of({
        byId: cached((id) => String(id), integrations.byId),
        byExternalId: cached((provider, externalId) => `${provider}\u0000${externalId}`, integrations.byExternalId)
      })
    ).pipe(
      Context.add(
        OrgRepo,
        OrgRepo.of({
          activeOrganizationIds: cached((id) => String(id), orgs.activeOrganizationIds),
          byIds: cached((ids) => ids.join(","), orgs.byIds)
        })
      ),
      Context.add(
        RegionDirectory,
        RegionDirectory.of({ byName: cached((name) => name, regions.byName), all: regions.all })
      ),
      Context.add(
        DirectoryStore,
        DirectoryStore.of({
          importDirectory: (directory) =>
            Effect.ensuring(
              store.importDirectory(directory),
              Effect.sync(() => caches.forEach((c) => c.clear()))
            )
        })
      )
    )
  }))
