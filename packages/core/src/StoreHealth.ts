/**
 * The store readiness port (`/readyz`), and the services every store provides.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"
import type { DirectoryStore } from "./DirectoryStore.js"
import type { StoreUnavailable } from "./Errors.js"
import type { IntegrationRepo } from "./IntegrationRepo.js"
import type { OrgRepo } from "./OrgRepo.js"
import type { Outbox } from "./Outbox.js"
import type { RegionDirectory } from "./RegionDirectory.js"
import type { ShedRules } from "./ShedRules.js"
import type { VolumeGate } from "./VolumeGate.js"

/**
 * Readiness of the store (`/readyz`): a real query succeeds, the migrations are at the latest version, and the store
 * can write. A write that failed (a full disk: `SQLITE_FULL`/`SQLITE_IOERR`, a PostgreSQL write error, an outage)
 * makes `check` fail until a later write succeeds — an `enqueue`, or the small write `check` itself then tries
 * (so that an instance taken out of rotation finds its way back without traffic).
 *
 * @since 0.1.0
 * @category tags
 */
export class StoreHealth extends Context.Tag("@cellgate/core/StoreHealth")<StoreHealth, {
  readonly check: Effect.Effect<void, StoreUnavailable>
}>() {}

/**
 * A store that is always ready (memory).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerAlwaysReady: Layer.Layer<StoreHealth> = Layer.succeed(
  StoreHealth,
  StoreHealth.of({ check: Effect.void })
)

/**
 * Everything a store provides (the memory, SQLite and PostgreSQL layers alike).
 *
 * @since 0.1.0
 * @category models
 */
export type StoreServices =
  | IntegrationRepo
  | OrgRepo
  | RegionDirectory
  | DirectoryStore
  | ShedRules
  | VolumeGate
  | Outbox
  | StoreHealth
