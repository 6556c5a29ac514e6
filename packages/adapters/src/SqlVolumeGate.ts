/**
 * The volume gate over any `SqlClient`: one counter row per key in `volume_counters`, shared by every process on the
 * database, one UPSERT per call (atomic on both dialects, row-locked on PostgreSQL) applying the rule of
 * `VolumeGate.volumeHit`. `SqlStore.layer` (and so `Sqlite.layer` / `Postgres.layer`) puts `VolumeGate.layerBuffered`
 * in front of it, so that a webhook costs no store write.
 *
 * @since 0.2.0
 */
import { VolumeGate } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Array as Arr, Effect, Layer, Option, Schema } from "effect"
import { decodeRows, Int, IntOrNull, storeErrors, WriteHealth } from "./internal/sql.js"

/**
 * What the UPSERT returns of a `volume_counters` row (`switched` is stored so that RETURNING can report it).
 *
 * @since 0.2.0
 * @category rows
 */
export const VerdictRow = Schema.Struct({ bucketed_until: IntOrNull, switched: Int })

const decodeVerdict = decodeRows(VerdictRow)

/**
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<VolumeGate.VolumeGate["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const health = yield* WriteHealth
  return VolumeGate.VolumeGate.of({
    // every SET expression reads the old row
    hit: (key, now, policy, count = 1) => {
      const window = Math.floor(now / policy.windowMs)
      const until = now + policy.holdMs
      const firstBucketed = count > policy.limit
      const hits =
        sql`(CASE WHEN volume_counters.window_index = ${window} THEN volume_counters.hits + ${count} ELSE ${count} END)`
      return sql`INSERT INTO volume_counters (key, window_index, hits, bucketed_until, switched)
        VALUES (${key}, ${window}, ${count}, ${firstBucketed ? until : null}, ${firstBucketed ? 1 : 0})
        ON CONFLICT (key) DO UPDATE SET
          window_index = ${window},
          hits = ${hits},
          bucketed_until = CASE
            WHEN volume_counters.bucketed_until IS NOT NULL AND volume_counters.bucketed_until > ${now}
              THEN volume_counters.bucketed_until
            WHEN ${hits} > ${policy.limit} THEN ${until}
            ELSE NULL END,
          switched = CASE
            WHEN volume_counters.bucketed_until IS NOT NULL AND volume_counters.bucketed_until > ${now} THEN 0
            WHEN ${hits} > ${policy.limit}
              THEN (CASE WHEN volume_counters.bucketed_until IS NULL THEN 1 ELSE 0 END)
            ELSE (CASE WHEN volume_counters.bucketed_until IS NULL THEN 0 ELSE 1 END) END
        RETURNING bucketed_until, switched`.pipe(
        Effect.flatMap(decodeVerdict),
        Effect.flatMap((rows) =>
          Option.match(Arr.head(rows), {
            onNone: () => Effect.dieMessage("the volume counter UPSERT returned no row"),
            onSome: (row) => Effect.succeed({ bucketed: row.bucketed_until !== null, switched: row.switched === 1 })
          })
        ),
        storeErrors("VolumeGate.hit"),
        health.track
      )
    }
  })
})

/**
 * The volume gate over the `SqlClient` in context (migrations must have run): one UPSERT per hit.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<VolumeGate.VolumeGate, never, SqlClient.SqlClient> = Layer.effect(
  VolumeGate.VolumeGate,
  make
)
