/**
 * Traces of a webhook across the outbox (docs/operations.md, "Traces"): the `Tracing` reference (off by default, so
 * the gateway's and the worker's requirement types do not grow), the W3C `traceparent` of a span, and the spans
 * themselves. Nothing here exports anything: an application (or `cellgate`'s `telemetry` section) installs an
 * Effect `Tracer` (e.g. `@effect/opentelemetry`'s `OtlpTracer`) and turns `Tracing` on.
 *
 * With tracing off, `Gateway` and `Delivery` add no span and no work on their hot paths (each checks one flag, read
 * once when it is built). With it on, one webhook is one trace: `cellgate.webhook` (ingest, kind server) with its
 * children `cellgate.route` and `cellgate.commit`; the ingest span's context is stored with each payload (its
 * `traceContext`), and every delivery attempt is a `cellgate.delivery` span (kind client) whose parent is that
 * ingest span — in whichever process, and after whatever restart, delivers it — and whose own context goes to the
 * region as `traceparent`, so that the region's trace joins. Attributes are bounded values (provider, decision,
 * status, mailbox, region, the redacted path), never a secret.
 *
 * @since 0.2.0
 */
import type { Tracer } from "effect"
import { Context, Effect, Layer, Option, Random } from "effect"

/**
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  /** Spans are made (an Effect `Tracer` that exports them must be installed). */
  readonly enabled: boolean
  /** The share of webhooks traced, 0 to 1 (decided once per webhook, at ingest). */
  readonly sampleRatio: number
}

/**
 * @since 0.2.0
 * @category defaults
 */
export const disabled: Settings = { enabled: false, sampleRatio: 1 }

/**
 * Whether spans are made, read once by `Gateway.make` and `Delivery.drainMailbox` (off unless provided).
 *
 * @since 0.2.0
 * @category tags
 */
export class Tracing extends Context.Reference<Tracing>()("@cellgate/core/Tracing", {
  defaultValue: (): Settings => disabled
}) {}

/**
 * Tracing on, with the share of webhooks traced (default all).
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: { readonly sampleRatio?: number } = {}): Layer.Layer<never> =>
  Layer.succeed(Tracing, { enabled: true, sampleRatio: options.sampleRatio ?? 1 })

// -------------------------------------------------------------------------------------------------------------------
// W3C trace context
// -------------------------------------------------------------------------------------------------------------------

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = "0".repeat(32)
const ZERO_SPAN = "0".repeat(16)

/**
 * The W3C `traceparent` of a span (`00-<trace id>-<span id>-01`), or none for a span that is not exported (the
 * native tracer's, or a disabled tracer's).
 *
 * @since 0.2.0
 * @category trace context
 */
export const traceparent = (span: Tracer.AnySpan): Option.Option<string> => {
  const value = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  return Option.isSome(parseTraceparent(value)) ? Option.some(value) : Option.none()
}

/**
 * A stored or received `traceparent` as the parent of a span (none when it is not a valid W3C value).
 *
 * @since 0.2.0
 * @category trace context
 */
export const parseTraceparent = (value: string): Option.Option<Tracer.ExternalSpan> => {
  const m = TRACEPARENT.exec(value)
  if (m === null || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return Option.none()
  return Option.some({
    _tag: "ExternalSpan",
    traceId: m[1]!,
    spanId: m[2]!,
    sampled: (parseInt(m[3]!, 16) & 1) === 1,
    context: Context.empty()
  })
}

/**
 * The `traceparent` of the current span, if it is one that is exported.
 *
 * @since 0.2.0
 * @category trace context
 */
export const currentTraceparent: Effect.Effect<Option.Option<string>> = Effect.map(
  Effect.option(Effect.currentSpan),
  Option.flatMap(traceparent)
)

/**
 * The headers of a hop with the current span as `traceparent` (the sender's `traceparent` and `tracestate` are
 * replaced: the region's trace joins ours). Unchanged when there is no exported span.
 *
 * @since 0.2.0
 * @category trace context
 */
export const withTraceparent = (headers: Record<string, string>): Effect.Effect<Record<string, string>> =>
  Effect.map(currentTraceparent, (parent) => {
    if (Option.isNone(parent)) return headers
    delete headers["tracestate"]
    headers["traceparent"] = parent.value
    return headers
  })

// -------------------------------------------------------------------------------------------------------------------
// Spans
// -------------------------------------------------------------------------------------------------------------------

/** Whether this webhook is traced (`sampleRatio` of them, with Effect's `Random`). */
const sampled = (settings: Settings): Effect.Effect<boolean> =>
  settings.sampleRatio >= 1
    ? Effect.succeed(true)
    : settings.sampleRatio <= 0
    ? Effect.succeed(false)
    : Effect.map(Random.next, (r) => r < settings.sampleRatio)

/**
 * Wraps the gateway's `handle`: a sampled webhook runs in a new root span `cellgate.webhook` (kind server), with the
 * tracer enabled for it and its children; one that is not sampled runs with the tracer disabled (no span of it is
 * exported, and nothing is stored for its delivery).
 *
 * @since 0.2.0
 * @category spans
 */
export const webhook = <A, E, R>(settings: Settings, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    sampled(settings),
    (yes) =>
      yes
        ? Effect.withTracerEnabled(
          Effect.withSpan(self, "cellgate.webhook", { kind: "server", root: true, captureStackTrace: false }),
          true
        )
        : Effect.withTracerEnabled(self, false)
  )

/**
 * A child span of the current one (`cellgate.route`, `cellgate.commit`), exported only inside a traced webhook.
 *
 * @since 0.2.0
 * @category spans
 */
export const child = (
  name: string,
  attributes: Record<string, unknown> = {}
) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withSpan(self, name, { attributes, captureStackTrace: false })

/**
 * One delivery attempt of a payload that carries a trace context: the span `cellgate.delivery` (kind client), child
 * of the stored ingest span, with the tracer enabled for it. A payload without one (stored while tracing was off, or
 * not sampled) is attempted without a span.
 *
 * @since 0.2.0
 * @category spans
 */
export const delivery = <A, E, R>(
  traceContext: string | null | undefined,
  attributes: Record<string, unknown>,
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const parent = traceContext == null ? Option.none() : parseTraceparent(traceContext)
  if (Option.isNone(parent) || !parent.value.sampled) return Effect.withTracerEnabled(self, false)
  return Effect.withTracerEnabled(
    Effect.withSpan(self, "cellgate.delivery", {
      kind: "client",
      parent: parent.value,
      attributes,
      captureStackTrace: false
    }),
    true
  )
}

/**
 * Annotates the current span (nothing when there is none).
 *
 * @since 0.2.0
 * @category spans
 */
export const annotate = (attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.annotateCurrentSpan(attributes)
