/**
 * The store over any `SqlClient` (SQLite or PostgreSQL): the directory (`SqlDirectory`), the volume gate
 * (`SqlVolumeGate`), the outbox (`SqlOutbox`) and readiness (`StoreHealth`: a query, the migrations, and no write
 * failed since the last append), composed with the caches that keep a webhook off the store: the directory reads go
 * through `DirectoryCache` and the volume counter is counted in memory and added to the shared counter once a second
 * (`VolumeGate.layerBuffered`). `Sqlite.layer` and `Postgres.layer` build the client, run the migrations and use
 * this layer. A store that cannot be read or written fails with `StoreUnavailable`; every call answers exactly as the
 * memory store does.
 *
 * @since 0.1.0
 */
import * as DirectoryCache from "@cellgate/core/DirectoryCache"
import * as Outbox from "@cellgate/core/Outbox"
import * as StoreHealth from "@cellgate/core/StoreHealth"
import * as VolumeGate from "@cellgate/core/VolumeGate"
import * as SqlClient from "@effect/sql/SqlClient"
import { Array as Arr, Context, Effect, Layer, Option, Schema } from "effect"
import { decodeRows, IntOrNull, makeTransaction, makeWriteHealth, storeErrors, WriteHealth } from "./internal/sql.js"
import * as SqlDirectory from "./SqlDirectory.js"
import { latestMigration, migrationsTable } from "./SqlMigrations.js"
import * as SqlOutbox from "./SqlOutbox.js"
import * as SqlVolumeGate from "./SqlVolumeGate.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions extends SqlOutbox.Options {
  /**
   * The directory reads through a cache (`DirectoryCache`: answers reused for `ttlMs`, default 5 s; an import
   * through this store clears it). `false`: every read queries the database (tests of the store itself).
   */
  readonly directoryCache?: DirectoryCache.Options | false | undefined
  /**
   * The volume counter counted in memory and added to the shared counter every `flushIntervalMs` (default 1 s;
   * `VolumeGate.layerBuffered`). `false`: one UPSERT per webhook (tests of the store itself).
   */
  readonly volumeBuffer?: { readonly flushIntervalMs?: number } | false | undefined
}

/**
 * Every service the SQL stores provide.
 *
 * @since 0.1.0
 * @category models
 */
export type Services = StoreHealth.StoreServices

/** The key of the readiness probe's row in `volume_counters` (written and deleted in one transaction). */
const PROBE_KEY = "cellgate:readiness-probe"

const LatestRow = Schema.Struct({ latest: IntOrNull })
const decodeLatest = decodeRows(LatestRow)

const makeHealth: Effect.Effect<StoreHealth.StoreHealth["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const health = yield* WriteHealth
  const transaction = makeTransaction(sql)
  const read = sql`SELECT MAX(migration_id) AS latest FROM ${sql(migrationsTable)}`.pipe(
    Effect.flatMap(decodeLatest),
    Effect.flatMap((rows) => {
      const latest = Option.getOrNull(Option.flatMap(Arr.head(rows), (r) => Option.fromNullable(r.latest)))
      return latest === latestMigration
        ? Effect.void
        : Effect.fail(new Error(`migrations at ${latest}, expected ${latestMigration}`))
    }),
    storeErrors("StoreHealth.check")
  )
  // after a failed write: one small committed write (a row inserted and deleted again), so that readiness comes
  // back by itself once the store can write, without waiting for traffic that a 503 `/readyz` keeps away
  const probe = transaction(Effect.zipRight(
    sql`INSERT INTO volume_counters (key, window_index, hits, bucketed_until, switched)
      VALUES (${PROBE_KEY}, 0, 0, NULL, 0) ON CONFLICT (key) DO NOTHING`,
    sql`DELETE FROM volume_counters WHERE key = ${PROBE_KEY}`
  )).pipe(storeErrors("StoreHealth.probe"), health.trackAppend)
  return StoreHealth.StoreHealth.of({
    check: Effect.zipRight(read, Effect.suspend(() => (health.failure() === undefined ? Effect.void : probe)))
  })
})

/**
 * Every store service over the `SqlClient` in context, without the caches: each call is a database round trip.
 * The write health is shared by the modules, so that readiness sees a failed write of any of them.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerUncached = (options: SqlOutbox.Options = {}): Layer.Layer<Services, never, SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const directory = yield* SqlDirectory.make
      const gate = yield* SqlVolumeGate.make
      const outbox = yield* SqlOutbox.make(options)
      const health = yield* makeHealth
      return SqlDirectory.toContext(directory).pipe(
        Context.add(VolumeGate.VolumeGate, gate),
        Context.add(Outbox.Outbox, outbox),
        Context.add(StoreHealth.StoreHealth, health)
      )
    }).pipe(Effect.provideServiceEffect(WriteHealth, Effect.sync(makeWriteHealth)))
  )

/**
 * Every store service over the `SqlClient` in context (migrations must have run), with the directory cache and the
 * buffered volume gate unless `options` turn them off.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: StoreOptions = {}): Layer.Layer<Services, never, SqlClient.SqlClient> => {
  const store = layerUncached(options)
  // `store` is one value: built once, shared by the caches in front of it
  const volumeGate = options.volumeBuffer === false
    ? Layer.empty
    : Layer.provide(VolumeGate.layerBuffered(options.volumeBuffer ?? {}), store)
  const directory = options.directoryCache === false
    ? Layer.empty
    : Layer.provide(DirectoryCache.layer(options.directoryCache ?? {}), store)
  return Layer.mergeAll(store, volumeGate, directory)
}
