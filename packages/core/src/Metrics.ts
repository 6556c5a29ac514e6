/**
 * The metrics of INTERFACES.md as Effect `Metric`s. Tagged variants are memoized, so the hot path does not build a
 * new metric key per request.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Metric, MetricBoundaries } from "effect"

const memo = <M>(make: (labels: ReadonlyArray<string>) => M) => {
  const cache = new Map<string, M>()
  return (...labels: ReadonlyArray<string>): M => {
    const key = labels.join("\u0000")
    let m = cache.get(key)
    if (m === undefined) {
      m = make(labels)
      cache.set(key, m)
    }
    return m
  }
}

const tagged = <M extends Metric.Metric<any, any, any>>(base: M, names: ReadonlyArray<string>) =>
  memo((labels) => names.reduce<M>((m, name, i) => Metric.tagged(m, name, labels[i] ?? "") as M, base))

const secondsBoundaries = MetricBoundaries.fromIterable([
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30
])

/** @since 0.1.0 */
export const requestsTotal = tagged(Metric.counter("cellgate_requests_total", { incremental: true }), [
  "provider",
  "status"
])
/** @since 0.1.0 */
export const decisionsTotal = tagged(Metric.counter("cellgate_decisions_total", { incremental: true }), [
  "provider",
  "kind"
])
/** @since 0.1.0 */
export const droppedTotal = tagged(Metric.counter("cellgate_dropped_total", { incremental: true }), [
  "provider",
  "reason"
])
/** @since 0.1.0 */
export const enqueueSeconds = Metric.histogram("cellgate_enqueue_seconds", secondsBoundaries)
/** @since 0.1.0 */
export const outboxDepth = tagged(Metric.gauge("cellgate_outbox_depth"), ["region"])
/** @since 0.1.0 */
export const outboxOldestAgeSeconds = tagged(Metric.gauge("cellgate_outbox_oldest_age_seconds"), ["region"])
/** @since 0.1.0 */
export const deliveriesTotal = tagged(Metric.counter("cellgate_deliveries_total", { incremental: true }), [
  "region",
  "outcome"
])
/** @since 0.1.0 */
export const deliverySeconds = tagged(Metric.histogram("cellgate_delivery_seconds", secondsBoundaries), ["region"])
/** @since 0.1.0 */
export const orderingRelaxedTotal = tagged(
  Metric.counter("cellgate_ordering_relaxed_total", { incremental: true }),
  ["reason"]
)

/**
 * Adds one to a counter.
 *
 * @since 0.1.0
 */
export const increment = (counter: Metric.Metric.Counter<number>): Effect.Effect<void> => Metric.increment(counter)

/**
 * Counts a dropped event (the one kind of 202 that stores nothing).
 *
 * @since 0.1.0
 */
export const countDropped = (provider: string, reason: string) => increment(droppedTotal(provider, reason))

/**
 * @since 0.1.0
 */
export const countRelaxed = (reason: "bucketing_switch" | "skip_on_failure") => increment(orderingRelaxedTotal(reason))
