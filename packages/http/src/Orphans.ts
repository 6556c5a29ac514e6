/**
 * The orphan sweep (docs/outbox.md): on a SQL store, the delivery worker recreates the mailbox row of payloads that
 * have none (`SqlStore.sweepOrphans`) once at start and then every `ORPHAN_SWEEP_INTERVAL_MS`. It should never find
 * anything: a non-zero count is logged as a warning and counted in `cellgate_outbox_orphans_repaired_total` (a bug
 * signal — alert on it). The memory store has no sweep (its default here does nothing).
 *
 * @since 0.1.0
 */
import type { StoreUnavailable } from "@cellgate/core"
import { Clock, Context, Effect, Metric, Schedule } from "effect"

/**
 * How often the worker sweeps (after the sweep at start).
 *
 * @since 0.1.0
 * @category constants
 */
export const ORPHAN_SWEEP_INTERVAL_MS = 60_000

/**
 * `cellgate_outbox_orphans_repaired_total`: mailbox rows the sweep recreated (should stay 0).
 *
 * @since 0.1.0
 * @category metrics
 */
export const orphansRepairedTotal = Metric.counter("cellgate_outbox_orphans_repaired_total", { incremental: true })

/**
 * The store's sweep: recreates missing mailbox rows (due at `now`) and returns how many. The default (memory store,
 * or a store given without one) sweeps nothing.
 *
 * @since 0.1.0
 * @category services
 */
export class OrphanSweep extends Context.Reference<OrphanSweep>()("@cellgate/http/OrphanSweep", {
  defaultValue: (): {
    readonly enabled: boolean
    readonly sweep: (now: number) => Effect.Effect<number, StoreUnavailable>
  } => ({ enabled: false, sweep: () => Effect.succeed(0) })
}) {}

/**
 * One sweep: logs a warning with the count and counts it when it repaired anything; a store failure is logged and
 * ignored (the next sweep tries again). Returns the count (0 on failure).
 *
 * @since 0.1.0
 * @category sweep
 */
export const sweepOnce: Effect.Effect<number> = Effect.gen(function*() {
  const { sweep } = yield* OrphanSweep
  const now = yield* Clock.currentTimeMillis
  const repaired = yield* sweep(now).pipe(
    Effect.catchTag("StoreUnavailable", (e) =>
      Effect.as(
        Effect.logError("store unavailable; orphan sweep failed").pipe(Effect.annotateLogs({ operation: e.operation })),
        0
      ))
  )
  if (repaired > 0) {
    yield* Metric.incrementBy(orphansRepairedTotal, repaired)
    yield* Effect.logWarning("outbox orphans repaired: payloads without a mailbox row (a bug signal)").pipe(
      Effect.annotateLogs({ repaired })
    )
  }
  return repaired
})

/**
 * Sweeps at once and then every `intervalMs`, forever (nothing at all when the store has no sweep).
 *
 * @since 0.1.0
 * @category sweep
 */
export const sweepForever = (intervalMs: number = ORPHAN_SWEEP_INTERVAL_MS): Effect.Effect<void> =>
  Effect.flatMap(OrphanSweep, ({ enabled }) =>
    enabled
      ? Effect.asVoid(Effect.repeat(sweepOnce, Schedule.spaced(intervalMs)))
      : Effect.void)
