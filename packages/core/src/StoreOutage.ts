/**
 * What a process does while its store is unavailable (an outage, a full disk): errors of the outage are logged once
 * per interval as one warning line `store unavailable` with a `count` — never once per request, never with a stack
 * trace — and the delivery worker's claims back off (`claimRetryDelay`) and recover by themselves.
 *
 * @since 0.2.0
 */
import { Array as Arr, Clock, Context, Effect, Order } from "effect"
import type { StoreUnavailable } from "./Errors.js"

/**
 * At most one `store unavailable` line per this many ms (per process).
 *
 * @since 0.2.0
 * @category constants
 */
export const LOG_INTERVAL_MS = 5_000

/**
 * The first delay of the claim loop after a failed claim.
 *
 * @since 0.2.0
 * @category constants
 */
export const CLAIM_BACKOFF_BASE_MS = 500

/**
 * The longest delay of the claim loop while claims fail.
 *
 * @since 0.2.0
 * @category constants
 */
export const CLAIM_BACKOFF_MAX_MS = 5_000

/**
 * How long the claim loop waits after `failures` claims in a row failed with `StoreUnavailable`: `pollIntervalMs`
 * when none failed, else `CLAIM_BACKOFF_BASE_MS × 2^(failures − 1)` capped at `CLAIM_BACKOFF_MAX_MS` (0.5 s, 1 s,
 * 2 s, 4 s, 5 s, 5 s, …), and never less than `pollIntervalMs`.
 *
 * @since 0.2.0
 * @category policy
 */
export const claimRetryDelay = (failures: number, pollIntervalMs: number): number => {
  if (!(failures > 0)) return pollIntervalMs
  const exponent = Math.min(failures - 1, 30)
  return Math.max(pollIntervalMs, Math.min(CLAIM_BACKOFF_MAX_MS, CLAIM_BACKOFF_BASE_MS * 2 ** exponent))
}

/**
 * One `store unavailable` line: how many outage errors it stands for (this one and those suppressed since the
 * previous line), the operations that failed, and the driver's message of the latest.
 *
 * @since 0.2.0
 * @category models
 */
export interface OutageLine {
  readonly count: number
  readonly operations: ReadonlyArray<string>
  readonly error: string
}

/**
 * Counts outage errors: `report` returns a line to log for the first error, and then for the first error at least
 * `intervalMs` after the previous line (with the count since that line); `undefined` otherwise.
 *
 * @since 0.2.0
 * @category models
 */
export interface Throttle {
  readonly report: (error: StoreUnavailable, now: number) => OutageLine | undefined
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const makeThrottle = (intervalMs: number = LOG_INTERVAL_MS): Throttle => {
  let lastLineAt: number | undefined
  let count = 0
  let operations = new Set<string>()
  return {
    report: (error, now) => {
      count++
      if (operations.size < 32) operations.add(error.operation)
      if (lastLineAt !== undefined && now - lastLineAt < intervalMs && now >= lastLineAt) return undefined
      const line: OutageLine = { count, operations: Arr.sort(operations, Order.string), error: detail(error) }
      lastLineAt = now
      count = 0
      operations = new Set()
      return line
    }
  }
}

/** The innermost message of the error's causes (the driver's text, e.g. `connect ECONNREFUSED …`), shortened. */
const detail = (error: StoreUnavailable): string => {
  let message = ""
  let current: unknown = error.cause
  for (let depth = 0; depth < 6 && current !== null && typeof current === "object"; depth++) {
    const m = (current as { readonly message?: unknown }).message
    if (typeof m === "string" && m !== "") message = m
    current = (current as { readonly cause?: unknown }).cause
  }
  if (typeof current === "string" && current !== "") message = current
  const text = message === "" ? error.message : message
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/**
 * The throttle of this process (one for every fiber, so that the gateway's requests and the worker share it).
 *
 * @since 0.2.0
 * @category services
 */
export class OutageLog extends Context.Reference<OutageLog>()("@cellgate/core/StoreOutage/OutageLog", {
  defaultValue: (): Throttle => makeThrottle()
}) {}

/**
 * Reports one outage error: logs the warning `store unavailable` with `count`, `operations` and `error` when the
 * throttle says so, else only counts it. Never logs a stack trace.
 *
 * @since 0.2.0
 * @category logging
 */
export const report = (error: StoreUnavailable): Effect.Effect<void> =>
  Effect.flatMap(OutageLog, (throttle) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const line = throttle.report(error, now)
      return line === undefined ? Effect.void : Effect.logWarning("store unavailable", { ...line })
    }))
