/**
 * The `telemetry` section (docs/configuration.md): traces exported over OTLP/HTTP (JSON) by `@effect/opentelemetry`'s
 * `OtlpTracer` — no OpenTelemetry SDK. Absent, nothing is loaded and nothing is traced (core's `Tracing` stays off,
 * so the request path has no span). `@effect/opentelemetry` is an optional peer of `@cellgate/http`, loaded with a
 * dynamic import only when the section is there.
 *
 * What is traced is core's (`Tracing.ts`): one trace per webhook (`cellgate.webhook` → `cellgate.route`,
 * `cellgate.commit`, then one `cellgate.delivery` span per attempt, in whichever process delivers it).
 *
 * @since 0.2.0
 */
import { Tracing } from "@cellgate/core"
import type { Scope } from "effect"
import { Context, Data, Effect, FiberRef, HashSet, Logger, Schema } from "effect"

/**
 * @since 0.2.0
 * @category models
 */
export const TelemetryConfig = Schema.Struct({
  /** The OTLP/HTTP base URL (spans are POSTed to `<otlpEndpoint>/v1/traces`, JSON encoding). */
  otlpEndpoint: Schema.String.pipe(
    Schema.pattern(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, {
      message: () => "an http(s) URL (the OTLP/HTTP base, e.g. http://127.0.0.1:4318)"
    })
  ),
  serviceName: Schema.optionalWith(Schema.String.pipe(Schema.nonEmptyString()), { default: () => "cellgate" }),
  sampleRatio: Schema.optionalWith(
    Schema.Number.pipe(Schema.between(0, 1, { message: () => "a number from 0 to 1" })),
    { default: () => 1 }
  )
})
/**
 * @since 0.2.0
 * @category models
 */
export type TelemetryConfig = typeof TelemetryConfig.Type

/**
 * `telemetry` is configured but `@effect/opentelemetry` cannot be loaded (it is an optional peer).
 *
 * @since 0.2.0
 * @category errors
 */
export class TelemetryUnavailable extends Data.TaggedError("TelemetryUnavailable")<{ readonly message: string }> {}

/**
 * Where spans are POSTed: `<otlpEndpoint>/v1/traces` (a trailing `/` of the endpoint is dropped).
 *
 * @since 0.2.0
 * @category utils
 */
export const tracesUrl = (telemetry: TelemetryConfig): string =>
  `${telemetry.otlpEndpoint.replace(/\/+$/, "")}/v1/traces`

/** The endpoint as logged: its origin only (never a user, password, path or query). */
const origin = (url: string): string => {
  try {
    return new URL(url).origin
  } catch {
    return "(invalid URL)"
  }
}

/**
 * Turns tracing on for the rest of the current scope, when `telemetry` is given (nothing at all otherwise): loads
 * `@effect/opentelemetry` (dynamic import), installs its `OtlpTracer` (JSON over `fetch`, every 5 s and when the
 * scope closes), disables Effect's tracer outside cellgate's own spans (the drain loop, the SQL client and the
 * exporter itself make no traces of their own), keeps log lines out of spans, and provides core's `Tracing` (on, with `sampleRatio`) to what is
 * built and forked afterwards in this fiber — the gateway, the server's runtime, the worker.
 *
 * @since 0.2.0
 * @category constructors
 */
export const install = (
  telemetry: TelemetryConfig | undefined
): Effect.Effect<void, TelemetryUnavailable, Scope.Scope> =>
  telemetry === undefined ? Effect.void : Effect.gen(function*() {
    const [OtlpTracer, OtlpSerialization, FetchHttpClient] = yield* Effect.tryPromise({
      try: () =>
        Promise.all([
          import("@effect/opentelemetry/OtlpTracer"),
          import("@effect/opentelemetry/OtlpSerialization"),
          import("@effect/platform/FetchHttpClient")
        ]),
      catch: () =>
        new TelemetryUnavailable({
          message: "telemetry is configured but @effect/opentelemetry is not installed: " +
            "npm install @effect/opentelemetry@~0.64 (or remove the telemetry section)"
        })
    })
    const tracer = yield* OtlpTracer.make({
      url: tracesUrl(telemetry),
      resource: { serviceName: telemetry.serviceName, serviceVersion: "0.2.0" },
      shutdownTimeout: "3 seconds"
    }).pipe(Effect.provide([OtlpSerialization.layerJson, FetchHttpClient.layer]))
    yield* Effect.withTracerScoped(tracer)
    yield* Effect.locallyScoped(FiberRef.currentTracerEnabled, false)
    // log lines are not copied into spans as events: they are redacted where they are written (Logging.ts), and a
    // span carries only its bounded attributes
    yield* Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.remove(Logger.tracerLogger))
    yield* Effect.locallyScopedWith(
      FiberRef.currentContext,
      Context.add(Tracing.Tracing, { enabled: true, sampleRatio: telemetry.sampleRatio })
    )
    yield* Effect.logInfo("tracing on").pipe(
      Effect.annotateLogs({
        otlp_endpoint: origin(telemetry.otlpEndpoint),
        service_name: telemetry.serviceName,
        sample_ratio: telemetry.sampleRatio
      })
    )
  })
