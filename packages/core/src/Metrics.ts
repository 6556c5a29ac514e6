/**
 * The metrics of docs/interfaces.md as Effect `Metric`s. Tagged variants are memoized, so the hot path does not build a
 * new metric key per request.
 *
 * @since 0.1.0
 */
import { Effect, Metric, MetricBoundaries, MetricKey } from "effect"
import { ProviderRegistry } from "./ProviderRegistry.js"

const secondsBoundaries: MetricBoundaries.MetricBoundaries = MetricBoundaries.fromIterable([
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

/**
 * A metric with labels: called with the label values it gives the tagged `Metric` (for `Metric.value` and the
 * like); `update(value, ...labels)` records through the metric's registry hook, looked up once per label values —
 * Effect's `Metric.increment` on a tagged metric rebuilds and hashes the full key on every update.
 *
 * @since 0.1.0
 * @category models
 */
export interface Family<M> {
  (...labels: ReadonlyArray<string>): M
  readonly update: (value: number, ...labels: ReadonlyArray<string>) => Effect.Effect<void>
}

const family = <M extends Metric.Metric<any, any, any>>(
  base: M,
  baseKey: MetricKey.MetricKey<any>,
  names: ReadonlyArray<string>
): Family<M> => {
  const cache = new Map<string, { readonly metric: M; readonly hook: { update: (value: number) => void } }>()
  const entry = (labels: ReadonlyArray<string>) => {
    const id = labels.join("\u0000")
    let e = cache.get(id)
    if (e === undefined) {
      const metric = names.reduce<M>((m, name, i) => Metric.tagged(m, name, labels[i] ?? "") as M, base)
      const key = names.reduce((k, name, i) => MetricKey.tagged(k, name, labels[i] ?? ""), baseKey)
      e = { metric, hook: Metric.globalMetricRegistry.get(key) as { update: (value: number) => void } }
      cache.set(id, e)
    }
    return e
  }
  return Object.assign((...labels: ReadonlyArray<string>) => entry(labels).metric, {
    update: (value: number, ...labels: ReadonlyArray<string>) => Effect.sync(() => entry(labels).hook.update(value))
  })
}

// from 202 to the first attempt: a backlog or a backoff makes it minutes, not milliseconds
const firstDeliveryBoundaries: MetricBoundaries.MetricBoundaries = MetricBoundaries.fromIterable([
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
  30,
  60,
  120,
  300,
  600,
  1800,
  3600
])

const counter = (name: string, names: ReadonlyArray<string>) =>
  family(
    Metric.counter(name, { incremental: true }),
    MetricKey.counter(name, { incremental: true }),
    names
  )
const histogram = (
  name: string,
  names: ReadonlyArray<string>,
  boundaries: MetricBoundaries.MetricBoundaries = secondsBoundaries
) => family(Metric.histogram(name, boundaries), MetricKey.histogram(name, boundaries), names)
const gauge = (name: string, names: ReadonlyArray<string>) => family(Metric.gauge(name), MetricKey.gauge(name), names)

/** @since 0.1.0 */
export const requestsTotal = counter("cellgate_requests_total", ["provider", "status"])
/** @since 0.1.0 */
export const decisionsTotal = counter("cellgate_decisions_total", ["provider", "kind"])
/** @since 0.1.0 */
export const droppedTotal = counter("cellgate_dropped_total", ["provider", "reason"])
/** @since 0.1.0 */
export const enqueueSeconds = histogram("cellgate_enqueue_seconds", [])
/** @since 0.1.0 */
export const outboxDepth = gauge("cellgate_outbox_depth", ["region"])
/** @since 0.1.0 */
export const outboxOldestAgeSeconds = gauge("cellgate_outbox_oldest_age_seconds", ["region"])
/** @since 0.1.0 */
export const deliveriesTotal = counter("cellgate_deliveries_total", ["region", "outcome"])
/** @since 0.1.0 */
export const deliverySeconds = histogram("cellgate_delivery_seconds", ["region"])
/** @since 0.1.0 */
export const orderingRelaxedTotal = counter("cellgate_ordering_relaxed_total", ["reason"])
/** `kind`: `relayed_answer`, `stored_answer` (a region's answer over the cap), `hop_headers` (sender headers). @since 0.1.0 */
export const truncatedTotal = counter("cellgate_truncated_total", ["kind"])
/** Webhooks answered 429 `shed` by a shed rule (docs/routing.md#shedding). @since 0.2.0 */
export const shedTotal = counter("cellgate_shed_total", ["provider"])
/** `outcome`: `sync` (answered live within the budget), `fallback` (docs/routing.md#deadline-aware-hybrid). @since 0.2.0 */
export const hybridTotal = counter("cellgate_hybrid_total", ["provider", "outcome"])
/** `outcome`: `ok`, `failed`, `refused_host` (a stored hybrid delivery's reply). @since 0.2.0 */
export const repliesTotal = counter("cellgate_replies_total", ["provider", "outcome"])
/**
 * A region's adaptive in-flight limit in this worker, set on every change (docs/routing.md#fair-adaptive-delivery).
 *
 * @since 0.3.0
 */
export const regionConcurrency = gauge("cellgate_region_concurrency", ["region"])
/**
 * Pauses of a whole region for a 429 or 503 with `Retry-After` (docs/routing.md#fair-adaptive-delivery).
 *
 * @since 0.3.0
 */
export const regionPausedTotal = counter("cellgate_region_paused_total", ["region"])
/**
 * From a payload's `receivedAt` (its 202) to its first attempt sent to the region.
 *
 * @since 0.3.0
 */
export const firstDeliverySeconds = histogram("cellgate_first_delivery_seconds", ["region"], firstDeliveryBoundaries)

/**
 * The `provider` label of a request: a provider the registry knows by that name, `control` when there is no
 * provider (not an `/extensions/` path, a setup or link path, an empty segment), else `unknown`. Labels come only
 * from these bounded sets — never a raw path segment, which a sender could vary without end.
 *
 * @since 0.2.0
 * @category labels
 */
export const providerLabel = (
  provider: string | null | undefined,
  registry: { readonly get: (name: string) => unknown }
): string => {
  if (provider === null || provider === undefined || provider === "" || provider === "control") return "control"
  return registry.get(provider) === undefined ? "unknown" : provider
}

/**
 * The `provider` label of a raw request target, for answers made before routing (413): the first segment after
 * `/extensions/` (`-` as `_`) through `providerLabel`; `/plugins/…` is `plugins`; any other path is `control`.
 *
 * @since 0.2.0
 * @category labels
 */
export const pathProviderLabel = (path: string, registry: { readonly get: (name: string) => unknown }): string => {
  // plugin paths are the `plugins` provider's (when it is registered), as routing has it
  if (path.startsWith("/plugins/")) return providerLabel("plugins", registry) === "plugins" ? "plugins" : "control"
  if (!path.startsWith("/extensions/")) return "control"
  const rest = path.slice("/extensions/".length)
  const end = rest.search(/[/?]/)
  return providerLabel((end === -1 ? rest : rest.slice(0, end)).replaceAll("-", "_"), registry)
}

/**
 * `pathProviderLabel` with the registry of the context.
 *
 * @since 0.2.0
 * @category labels
 */
export const pathLabel = (path: string): Effect.Effect<string, never, ProviderRegistry> =>
  Effect.map(ProviderRegistry, (registry) => pathProviderLabel(path, registry))

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
export const countDropped = (provider: string, reason: string) => droppedTotal.update(1, provider, reason)

/**
 * @since 0.1.0
 */
export const countRelaxed = (reason: "bucketing_switch" | "skip_on_failure") => orderingRelaxedTotal.update(1, reason)
