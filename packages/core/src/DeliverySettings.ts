/**
 * The delivery worker's settings (the `delivery` section of the configuration file), declared once as a Schema with
 * its defaults: `defaults`, `layer(partial)`, and the `DeliverySettings` reference that the worker reads (the
 * defaults when nothing is provided).
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Schema } from "effect"

const nonNegative = Schema.Number.pipe(Schema.nonNegative())
const positiveInt = Schema.Int.pipe(Schema.positive())
const nonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const withDefault = <S extends Schema.Schema.AnyNoContext>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value })

/**
 * The settings, each key optional with its default (decoding `{}` gives `defaults`). The configuration file's
 * `delivery` section is this schema.
 *
 * @since 0.2.0
 * @category models
 */
export const Settings = Schema.Struct({
  /** How long the worker waits when nothing is due (an enqueue of this process cuts it short). */
  pollIntervalMs: withDefault(positiveInt, () => 500),
  /** Timeout of one request to a region. */
  requestTimeoutMs: withDefault(positiveInt, () => 12_000),
  /** Sends per payload before it is dead-lettered. */
  maxAttempts: withDefault(positiveInt, () => 10),
  backoffBaseMs: withDefault(nonNegative, () => 180_000),
  backoffRate: withDefault(Schema.Number.pipe(Schema.greaterThanOrEqualTo(1)), () => 1.4),
  backoffMaxMs: withDefault(nonNegative, () => 3_600_000),
  /** The backoff is multiplied by a uniform factor in `[1 − jitter, 1 + jitter]`. */
  jitter: withDefault(Schema.Number.pipe(Schema.between(0, 1)), () => 0.1),
  /** A longer `Retry-After` replaces the backoff, capped at this. */
  retryAfterMaxMs: withDefault(nonNegative, () => 3_600_000),
  /** Payloads older than this (from `receivedAt`) are dead-lettered without being sent again. */
  maxAgeMs: withDefault(positiveInt, () => 259_200_000),
  /** Providers whose mailboxes go on past a failed head (ordering relaxed, counted). */
  skipOnFailureProviders: withDefault(Schema.Array(Schema.String), () => ["github"]),
  /** Mailboxes drained at once by one worker. */
  concurrency: withDefault(positiveInt, () => 16),
  leaseMs: withDefault(positiveInt, () => 30_000),
  /** Mailboxes claimed per claim query (at most the free drain slots). */
  claimBatch: withDefault(positiveInt, () => 32),
  /** A region's answer is read up to this many bytes; the rest is not read (the start is what is stored). */
  maxAnswerBytes: withDefault(positiveInt, () => 1_048_576),
  /**
   * Tenant-fair claims (docs/routing.md#fair-adaptive-delivery): a worker holds at most this many mailboxes of one
   * tenant at once while mailboxes of other tenants are due. `0`: plain oldest-due-first.
   *
   * @since 0.3.0
   */
  fairShare: withDefault(nonNegativeInt, () => 2),
  /**
   * One drain attempts at most this many payloads of its mailbox, then releases it due at once (a deep mailbox never
   * holds a drain slot for long). `0`: drains to the end.
   *
   * @since 0.3.0
   */
  drainSlice: withDefault(nonNegativeInt, () => 32),
  /**
   * The in-flight limit a region starts with (clamped to `[1, concurrency]`), which the adaptive limit then moves.
   *
   * @since 0.3.0
   */
  regionConcurrency: withDefault(positiveInt, () => 4),
  /**
   * The adaptive per-region limit (AIMD, `DeliveryPolicy.limitAfter`) and the pauses of `Retry-After`. `false`: a
   * fixed limit of `concurrency` per region and no pauses (the first wave's behaviour).
   *
   * @since 0.3.0
   */
  adaptive: withDefault(Schema.Boolean, () => true)
})
/**
 * @since 0.2.0
 * @category models
 */
export type Settings = typeof Settings.Type

/**
 * The defaults (those of the configuration file's documentation).
 *
 * @since 0.2.0
 * @category defaults
 */
export const defaults: Settings = Schema.decodeSync(Settings)({})

/**
 * The delivery settings in use: `defaults` unless a layer (`layer`) or `withSettings` says otherwise.
 *
 * @since 0.2.0
 * @category tags
 */
export class DeliverySettings extends Context.Reference<DeliverySettings>()("@cellgate/core/DeliverySettings", {
  defaultValue: (): Settings => defaults
}) {}

/**
 * Settings with some keys given (the rest defaults).
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: Partial<Settings>): Layer.Layer<never> =>
  Layer.succeed(DeliverySettings, { ...defaults, ...options })

/**
 * Runs `effect` with some settings overridden (the others as currently provided).
 *
 * @since 0.2.0
 * @category combinators
 */
export const withSettings = (overrides: Partial<Settings>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    DeliverySettings,
    (current) => Effect.provideService(effect, DeliverySettings, { ...current, ...overrides })
  )
