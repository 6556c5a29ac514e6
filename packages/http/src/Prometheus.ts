/**
 * A small Prometheus text-format (0.0.4) encoder for Effect's metric registry: counters, gauges, histograms,
 * frequencies and summaries with their tags as labels. (No dependency on an OpenTelemetry exporter: the gateway
 * only needs `GET /metrics`.)
 *
 * @since 0.1.0
 */
import type { MetricPair } from "effect"
import { Effect, Metric, MetricState, Option } from "effect"

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const sanitizeName = (n: string) => n.replace(/[^a-zA-Z0-9_:]/g, "_")

const labels = (tags: ReadonlyArray<{ key: string; value: string }>, extra?: readonly [string, string]): string => {
  const parts = tags.map((t) => `${sanitizeName(t.key)}="${escapeLabel(t.value)}"`)
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`)
  return parts.length === 0 ? "" : `{${parts.join(",")}}`
}

const num = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return Number.isNaN(n) ? "NaN" : String(n)
}

/**
 * The metric names of docs/interfaces.md, always listed (with a `# TYPE` line) even before their first sample.
 *
 * @since 0.1.0
 * @category encoding
 */
export const cellgateMetrics: ReadonlyArray<readonly [string, string]> = [
  ["cellgate_requests_total", "counter"],
  ["cellgate_decisions_total", "counter"],
  ["cellgate_dropped_total", "counter"],
  ["cellgate_enqueue_seconds", "histogram"],
  ["cellgate_outbox_depth", "gauge"],
  ["cellgate_outbox_oldest_age_seconds", "gauge"],
  ["cellgate_deliveries_total", "counter"],
  ["cellgate_delivery_seconds", "histogram"],
  ["cellgate_ordering_relaxed_total", "counter"],
  ["cellgate_truncated_total", "counter"],
  ["cellgate_outbox_orphans_repaired_total", "counter"],
  ["cellgate_shed_total", "counter"],
  ["cellgate_hybrid_total", "counter"],
  ["cellgate_replies_total", "counter"],
  // fair, adaptive delivery (docs/routing.md#fair-adaptive-delivery)
  ["cellgate_region_concurrency", "gauge"],
  ["cellgate_region_paused_total", "counter"],
  ["cellgate_first_delivery_seconds", "histogram"]
]

/**
 * How the series of Effect's own runtime metrics are exposed (by name; a name not listed is encoded by its state):
 * `effect_fiber_active` is a counter in Effect's registry but goes up and down — a `gauge`; `effect_fiber_failures`
 * counts every fiber that ended with a failure, expected ones included (a typed error handled by its caller, an
 * interrupted race) — a number that alarms readers and means nothing, so it is left out (`omit`).
 *
 * @since 0.2.0
 * @category encoding
 */
export const runtimeSeries: ReadonlyMap<string, "gauge" | "omit"> = new Map([
  ["effect_fiber_active", "gauge"],
  ["effect_fiber_failures", "omit"]
])

/**
 * Encodes a metric snapshot. Metrics of one name are grouped under one `# TYPE` line; Effect's runtime series as
 * `runtimeSeries` says.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (
  pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>,
  declared: ReadonlyArray<readonly [name: string, type: string]> = cellgateMetrics
): string => {
  const groups = new Map<string, { type: string; lines: Array<string> }>()
  for (const [name, type] of declared) groups.set(name, { type, lines: [] })
  const group = (name: string, type: string) => {
    let g = groups.get(name)
    if (g === undefined) {
      g = { type, lines: [] }
      groups.set(name, g)
    }
    return g.lines
  }
  for (const pair of pairs) {
    const name = sanitizeName(pair.metricKey.name)
    const runtime = runtimeSeries.get(name)
    if (runtime === "omit") continue
    const tags = [...pair.metricKey.tags].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    const state = pair.metricState
    if (MetricState.isCounterState(state)) {
      group(name, runtime ?? "counter").push(`${name}${labels(tags)} ${num(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      group(name, "gauge").push(`${name}${labels(tags)} ${num(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const lines = group(name, "histogram")
      let sawInf = false
      for (const [bound, count] of state.buckets) {
        if (bound === Infinity) sawInf = true
        lines.push(`${name}_bucket${labels(tags, ["le", num(bound)])} ${count}`)
      }
      if (!sawInf) lines.push(`${name}_bucket${labels(tags, ["le", "+Inf"])} ${state.count}`)
      lines.push(`${name}_sum${labels(tags)} ${num(state.sum)}`)
      lines.push(`${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const lines = group(name, "counter")
      for (const [value, count] of state.occurrences) lines.push(`${name}${labels(tags, ["value", value])} ${count}`)
    } else if (MetricState.isSummaryState(state)) {
      const lines = group(name, "summary")
      for (const [q, v] of state.quantiles) {
        if (Option.isSome(v)) lines.push(`${name}${labels(tags, ["quantile", String(q)])} ${num(v.value)}`)
      }
      lines.push(`${name}_sum${labels(tags)} ${num(state.sum)}`)
      lines.push(`${name}_count${labels(tags)} ${state.count}`)
    }
  }
  let out = ""
  for (const [name, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out += `# TYPE ${name} ${g.type}\n`
    for (const line of g.lines) out += line + "\n"
  }
  return out
}

/**
 * The Prometheus text of every metric in Effect's global registry.
 *
 * @since 0.1.0
 * @category encoding
 */
export const render: Effect.Effect<string> = Effect.map(Metric.snapshot, encode)

/**
 * @since 0.1.0
 * @category encoding
 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"
