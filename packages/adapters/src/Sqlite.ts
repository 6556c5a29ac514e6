/**
 * The embedded SQLite store (`store.kind = "sqlite"`): one process, one connection (better-sqlite3 through
 * `@effect/sql-sqlite-node`), WAL, `synchronous = FULL` by default (power-loss durable; `"normal"` survives a process
 * crash but may lose the last commits on power loss), `busy_timeout`, migrations at start.
 *
 * @since 0.1.0
 */
import { StoreUnavailable } from "@cellgate/core"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Effect, Layer } from "effect"
import { migrate } from "./SqlMigrations.js"
import type { Services, StoreOptions } from "./SqlStore.js"
import * as SqlStore from "./SqlStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /** The database file (created if absent). */
  readonly path: string
  /** `"full"` (default): durable on power loss. `"normal"`: durable on a process crash only, faster. */
  readonly synchronous?: "full" | "normal" | undefined
  /** How long a statement waits for a lock held by another connection (default 5000 ms). */
  readonly busyTimeoutMs?: number | undefined
}

const opened = (operation: string) => <A, E, R>(self: Layer.Layer<A, E, R>): Layer.Layer<A, StoreUnavailable, R> =>
  Layer.catchAllCause(self, (cause) => Layer.fail(new StoreUnavailable({ operation, cause: Cause.squash(cause) })))

/**
 * The migrated SQLite client alone (`SqlClient` and `SqliteClient`).
 *
 * @since 0.1.0
 * @category layers
 */
export const clientLayer = (
  options: Options
): Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient, StoreUnavailable> => {
  const client = SqliteClient.layer({ filename: options.path })
  const setup = Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`)
    yield* sql.unsafe(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`)
    yield* migrate
  }))
  return setup.pipe(Layer.provideMerge(client), opened("open sqlite"))
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
): Layer.Layer<Services | SqlClient.SqlClient | SqliteClient.SqliteClient, StoreUnavailable> =>
  SqlStore.layer(options).pipe(Layer.provideMerge(clientLayer(options)))

/**
 * Every store service on a SQLite file, fast whoever composes it: the directory reads go through the directory
 * cache and the volume gate counts in memory, adding to the shared counter once a second (`SqlStore.layer`; turn
 * either off with `directoryCache: false` / `volumeBuffer: false`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, StoreUnavailable> => layerWithSql(options)
