/**
 * The PostgreSQL store (`store.kind = "postgres"`): several gateway and worker processes share one database; claims
 * use row locks (`FOR UPDATE SKIP LOCKED`) and per-mailbox leases; the volume gate is one UPSERT.
 *
 * @since 0.1.0
 */
import { StoreUnavailable } from "@cellgate/core"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Duration, Effect, Layer, Redacted } from "effect"
import { migrate } from "./SqlMigrations.js"
import type { Services, StoreOptions } from "./SqlStore.js"
import * as SqlStore from "./SqlStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /** `postgres://user:password@host:port/database` */
  readonly url: string | Redacted.Redacted<string>
  /** Pool size (default 10). */
  readonly maxConnections?: number | undefined
  /** Time allowed to open a connection (default 5 s). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** `application_name` of the connections (default `"cellgate"`). */
  readonly applicationName?: string | undefined
}

const opened = (operation: string) => <A, E, R>(self: Layer.Layer<A, E, R>): Layer.Layer<A, StoreUnavailable, R> =>
  Layer.catchAllCause(self, (cause) => Layer.fail(new StoreUnavailable({ operation, cause: Cause.squash(cause) })))

/**
 * The migrated PostgreSQL client alone (`SqlClient` and `PgClient`).
 *
 * @since 0.1.0
 * @category layers
 */
export const clientLayer = (
  options: Options
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, StoreUnavailable> => {
  const client = PgClient.layer({
    url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
    maxConnections: options.maxConnections ?? 10,
    minConnections: 0,
    idleTimeout: Duration.seconds(30),
    connectTimeout: options.connectTimeout ?? Duration.seconds(5),
    applicationName: options.applicationName ?? "cellgate"
  })
  // processes starting together race to create the migrations table: the loser's CREATE fails, its retry finds the
  // table and waits on the migrator's table lock
  return Layer.effectDiscard(Effect.retry(migrate, { times: 3 })).pipe(
    Layer.provideMerge(client),
    opened("open postgres")
  )
}

/**
 * The store services (with their caches, as `layer`) plus the `SqlClient` underneath (`SqlOutbox.sweepOrphans`,
 * tests).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithSql = (
  options: Options
): Layer.Layer<Services | SqlClient.SqlClient | PgClient.PgClient, StoreUnavailable> =>
  SqlStore.layer(options).pipe(Layer.provideMerge(clientLayer(options)))

/**
 * Every store service on a PostgreSQL database, fast whoever composes it: the directory reads go through the directory
 * cache and the volume gate counts in memory, adding to the shared counter once a second (`SqlStore.layer`; turn
 * either off with `directoryCache: false` / `volumeBuffer: false`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, StoreUnavailable> => layerWithSql(options)
