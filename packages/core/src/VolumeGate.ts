/**
 * The volume gate port (docs/routing.md#jira-server: more than `limit` webhooks of one key in a fixed window turns bucketing on
 * for `holdMs`): its tag, its models, the rule every store applies (`volumeHit`), its memory layer, a gate that
 * counts nothing (`layerNoop`, for `explain`), and `layerBuffered`, which keeps the store's shared counter off the hot
 * path.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer } from "effect"
import type { StoreUnavailable } from "./Errors.js"
import * as StoreOutage from "./StoreOutage.js"

/**
 * The per-integration hourly webhook counter behind mailbox bucketing. Kept in the store, so every gateway process
 * sees the same count.
 *
 * @since 0.1.0
 * @category tags
 */
export class VolumeGate extends Context.Tag("@cellgate/core/VolumeGate")<VolumeGate, {
  /**
   * Counts one webhook for `key` at `now` (epoch ms) and tells whether bucketing is on: once more than `limit`
   * webhooks arrive in one fixed window of `windowMs`, bucketing stays on for `holdMs`. `switched` is true on the
   * call that turned it on. `count` (default 1) counts several webhooks at once (see `layerBuffered`).
   */
  readonly hit: (
    key: string,
    now: number,
    policy: VolumePolicy,
    count?: number
  ) => Effect.Effect<VolumeVerdict, StoreUnavailable>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface VolumePolicy {
  readonly limit: number
  readonly windowMs: number
  readonly holdMs: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface VolumeVerdict {
  readonly bucketed: boolean
  readonly switched: boolean
}

/**
 * The counter of one key.
 *
 * @since 0.1.0
 * @category models
 */
export interface VolumeCounter {
  window: number
  count: number
  bucketedUntil: number | null
}

/**
 * The rule every store applies, on a map of counters: a fixed window of `windowMs`; more than `limit` hits in one
 * window turns bucketing on until `now + holdMs`; `switched` is true on the hit where the state changed (on, or off
 * once the hold has run out).
 *
 * @since 0.1.0
 * @category utils
 */
export const volumeHit = (
  counters: Map<string, VolumeCounter>,
  key: string,
  now: number,
  policy: VolumePolicy,
  hits = 1
): VolumeVerdict => {
  const window = Math.floor(now / policy.windowMs)
  const state = counters.get(key) ?? { window, count: 0, bucketedUntil: null }
  if (state.window !== window) {
    state.window = window
    state.count = 0
  }
  state.count += hits
  counters.set(key, state)
  let switched = false
  if (state.bucketedUntil !== null && state.bucketedUntil <= now) {
    state.bucketedUntil = null
    switched = true
  }
  if (state.bucketedUntil !== null) return { bucketed: true, switched: false }
  if (state.count > policy.limit) {
    state.bucketedUntil = now + policy.holdMs
    return { bucketed: true, switched: !switched }
  }
  return { bucketed: false, switched }
}

/**
 * Wraps the store's `VolumeGate` so that a webhook costs no store write: hits are counted in memory (the same rule,
 * so one process alone switches at exactly the same webhook) and added to the store's shared counter once every
 * `flushIntervalMs` (default 1 s) in one write per key. When the store reports bucketing on (another process pushed
 * the shared count over the limit), this process follows from then on. The price: processes see each other's traffic
 * up to one interval late, and a crash forgets at most one interval of counts — neither loses a webhook.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerBuffered = (
  options: { readonly flushIntervalMs?: number } = {}
): Layer.Layer<VolumeGate, never, VolumeGate> =>
  Layer.scoped(
    VolumeGate,
    Effect.gen(function*() {
      const store = yield* VolumeGate
      const counters = new Map<string, VolumeCounter>()
      const pending = new Map<string, { hits: number; policy: VolumePolicy }>()
      const learned = new Set<string>()

      const flush = Effect.gen(function*() {
        if (pending.size === 0) return
        const now = yield* Clock.currentTimeMillis
        const batch = Array.from(pending)
        pending.clear()
        for (const [key, { hits, policy }] of batch) {
          const verdict = yield* Effect.either(store.hit(key, now, policy, hits))
          if (verdict._tag === "Left") {
            const again = pending.get(key)
            pending.set(key, { hits: hits + (again?.hits ?? 0), policy })
            // kept for the next flush; logged once per interval with the other outage errors
            yield* StoreOutage.report(verdict.left)
            continue
          }
          const local = counters.get(key)
          if (
            verdict.right.bucketed && local !== undefined &&
            (local.bucketedUntil === null || local.bucketedUntil <= now)
          ) {
            local.bucketedUntil = now + policy.holdMs
            learned.add(key)
          }
        }
      })

      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.flushIntervalMs ?? 1_000), flush)))
      yield* Effect.addFinalizer(() => flush)

      return VolumeGate.of({
        hit: (key, now, policy, count = 1) =>
          Effect.sync(() => {
            const p = pending.get(key)
            if (p === undefined) pending.set(key, { hits: count, policy })
            else p.hits += count
            const verdict = volumeHit(counters, key, now, policy, count)
            if (learned.delete(key) && verdict.bucketed) return { bucketed: true, switched: true }
            return verdict
          })
      })
    })
  )

/**
 * The volume gate in memory (one process only).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<VolumeGate> = Layer.sync(VolumeGate, () => {
  const counters = new Map<string, VolumeCounter>()
  return VolumeGate.of({
    hit: (key, now, policy, count) => Effect.sync(() => volumeHit(counters, key, now, policy, count))
  })
})

const notBucketed: Effect.Effect<VolumeVerdict> = Effect.succeed({ bucketed: false, switched: false })

/**
 * A gate that counts nothing and never buckets (`explain` routes with it, so that explaining a webhook does not
 * count as one).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerNoop: Layer.Layer<VolumeGate> = Layer.succeed(VolumeGate, VolumeGate.of({ hit: () => notBucketed }))
