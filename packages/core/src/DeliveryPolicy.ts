/**
 * What one delivery attempt means, as pure functions (`docs/outbox.md`): `decide` turns a payload, the region's answer
 * (or its absence), the time, the settings and a random number into `Complete | Retry | DeadLetter`, which
 * `Delivery.drainMailbox` carries out; `expired` says whether a payload may still be sent at all. Beside them the
 * pieces: `answerClass` (the status rule), `backoffDelay`, `parseRetryAfter`, `truncateBody`. And the adaptive
 * per-region limit (AIMD, docs/routing.md#fair-adaptive-delivery) as pure decisions: `limitStart`, `limitAfter` and
 * `loadSignal`, which the worker's region gate carries out.
 *
 * @since 0.2.0
 */
import { Data, Option } from "effect"
import type { Settings } from "./DeliverySettings.js"
import type { StoredPayload } from "./Outbox.js"
import type { RegionResponse } from "./RegionClient.js"

// -------------------------------------------------------------------------------------------------------------------
// Pieces
// -------------------------------------------------------------------------------------------------------------------

/**
 * The delay before the next attempt: `min(base × rate^attempts, max)` times a factor in `[1 − jitter, 1 + jitter]`,
 * where `attempts` is the count *after* the failed attempt was counted (1 after the first failure: 4.2 minutes with
 * the defaults, then 5.9, 8.2, …) and `random01` is uniform in `[0, 1)`. Whole milliseconds.
 *
 * @since 0.1.0
 * @category policy
 */
export const backoffDelay = (
  attempts: number,
  settings: Pick<Settings, "backoffBaseMs" | "backoffRate" | "backoffMaxMs" | "jitter">,
  random01: number
): number => {
  const base = Math.min(settings.backoffBaseMs * Math.pow(settings.backoffRate, attempts), settings.backoffMaxMs)
  const factor = 1 - settings.jitter + 2 * settings.jitter * random01
  return Math.round(base * factor)
}

const HTTP_DATE = /^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s/i

/**
 * The delay a `Retry-After` header asks for, in ms: delay-seconds (`120`) or an HTTP date (a date in the past is 0).
 * `None` when absent or unreadable.
 *
 * @since 0.1.0
 * @category policy
 */
export const parseRetryAfter = (value: string | undefined, nowMs: number): Option.Option<number> => {
  if (value === undefined) return Option.none()
  const text = value.trim()
  if (/^\d+$/.test(text)) return Option.some(Number(text) * 1000)
  if (!HTTP_DATE.test(text)) return Option.none()
  const at = Date.parse(text)
  return Number.isNaN(at) ? Option.none() : Option.some(Math.max(0, at - nowMs))
}

/**
 * What a region's status means for delivery.
 *
 * @since 0.2.0
 * @category models
 */
export type AnswerClass = "ok" | "permanent" | "retryable"

const PERMANENT: ReadonlySet<number> = new Set([400, 401, 403, 404, 409])

/**
 * The status rule: 2xx → `ok`; 400, 401, 403, 404, 409 → `permanent`; every other status (1xx, 3xx — redirects are
 * not followed —, other 4xx, 5xx) → `retryable`. An attempt without an answer (timeout, refused, reset, DNS) is
 * retryable too (`decide`).
 *
 * @since 0.2.0
 * @category policy
 */
export const answerClass = (status: number): AnswerClass => {
  if (status >= 200 && status < 300) return "ok"
  return PERMANENT.has(status) ? "permanent" : "retryable"
}

const MAX_DEAD_BODY = 2048
const decoder = new TextDecoder("utf-8", { fatal: false })

/**
 * The start of a region's answer, as text, for the dead-letter store.
 *
 * @since 0.1.0
 * @category policy
 */
export const truncateBody = (body: Uint8Array, max: number = MAX_DEAD_BODY): string => {
  const text = decoder.decode(body.length > max * 4 ? body.subarray(0, max * 4) : body)
  return text.length > max ? `${text.slice(0, max)}…` : text
}

const firstValue = (v: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof v === "string" ? v : v?.[0]

// -------------------------------------------------------------------------------------------------------------------
// Decision
// -------------------------------------------------------------------------------------------------------------------

/**
 * How one attempt ended: the region answered (`Answered`), or there was no answer to read (`NoAnswer`: a transport
 * error, a region missing from the directory, a defect while delivering), with the error to store.
 *
 * @since 0.2.0
 * @category models
 */
export type Answer = Data.TaggedEnum<{
  Answered: { readonly response: RegionResponse }
  NoAnswer: { readonly error: string }
}>

/**
 * @since 0.2.0
 * @category constructors
 */
export const Answer = Data.taggedEnum<Answer>()

/**
 * Why a payload was dead-lettered.
 *
 * @since 0.2.0
 * @category models
 */
export type DeadLetterReason = "max_attempts" | "max_age" | "permanent_failure"

/**
 * What to do with the payload after an attempt: delete it (`Complete`), try again at `nextAttemptAt` (`Retry`, the
 * attempt counted), or move it to the dead letters (`DeadLetter`) with the last answer.
 *
 * @since 0.2.0
 * @category models
 */
export type Decision = Data.TaggedEnum<{
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  Complete: {}
  Retry: { readonly nextAttemptAt: number; readonly delayMs: number; readonly attempts: number; readonly error: string }
  DeadLetter: {
    readonly reason: DeadLetterReason
    readonly lastStatus: number | null
    readonly lastBody: string | null
  }
}>

/**
 * @since 0.2.0
 * @category constructors
 */
export const Decision = Data.taggedEnum<Decision>()

/**
 * Whether `payload` may no longer be sent at `now`: it already used `maxAttempts` (the operator lowered it), or it is
 * older than `maxAgeMs`. Then a `DeadLetter` whose last body is the payload's last error.
 *
 * @since 0.2.0
 * @category policy
 */
export const expired = (
  payload: Pick<StoredPayload, "attempts" | "receivedAt" | "lastError">,
  now: number,
  settings: Pick<Settings, "maxAttempts" | "maxAgeMs">
): Option.Option<Decision> => {
  if (payload.attempts >= settings.maxAttempts) {
    return Option.some(Decision.DeadLetter({ reason: "max_attempts", lastStatus: null, lastBody: payload.lastError }))
  }
  if (now - payload.receivedAt > settings.maxAgeMs) {
    return Option.some(Decision.DeadLetter({ reason: "max_age", lastStatus: null, lastBody: payload.lastError }))
  }
  return Option.none()
}

/**
 * The decision after one attempt of `payload` (its `attempts` not yet counting this one) that ended at `now`:
 *
 * - a 2xx answer → `Complete`;
 * - 400, 401, 403, 404, 409 → `DeadLetter` (`permanent_failure`) with the status and the start of the answer;
 * - any other answer, or none → the attempt is counted: when that makes `maxAttempts` → `DeadLetter`
 *   (`max_attempts`); when the payload is older than `maxAgeMs` (it could not be sent again) → `DeadLetter`
 *   (`max_age`); otherwise `Retry` after `backoffDelay(attempts + 1, settings, random01)`, or after a longer
 *   `Retry-After` of the answer, capped at `retryAfterMaxMs`.
 *
 * Pure: the same arguments give the same decision. `random01` is uniform in `[0, 1)`.
 *
 * @since 0.2.0
 * @category policy
 */
export const decide = (
  payload: Pick<StoredPayload, "attempts" | "receivedAt">,
  answer: Answer,
  now: number,
  settings: Pick<
    Settings,
    "maxAttempts" | "maxAgeMs" | "backoffBaseMs" | "backoffRate" | "backoffMaxMs" | "jitter" | "retryAfterMaxMs"
  >,
  random01: number
): Decision => {
  let error: string
  let lastStatus: number | null = null
  let lastBody: string | null = null
  let retryAfter = Option.none<number>()
  if (answer._tag === "Answered") {
    const { response } = answer
    switch (answerClass(response.status)) {
      case "ok":
        return Decision.Complete()
      case "permanent":
        return Decision.DeadLetter({
          reason: "permanent_failure",
          lastStatus: response.status,
          lastBody: truncateBody(response.body)
        })
      case "retryable":
        error = `HTTP ${response.status}`
        lastStatus = response.status
        lastBody = truncateBody(response.body)
        retryAfter = parseRetryAfter(firstValue(response.headers["retry-after"]), now)
    }
  } else error = answer.error
  const attempts = payload.attempts + 1
  if (attempts >= settings.maxAttempts) return Decision.DeadLetter({ reason: "max_attempts", lastStatus, lastBody })
  if (now - payload.receivedAt > settings.maxAgeMs) {
    return Decision.DeadLetter({ reason: "max_age", lastStatus, lastBody })
  }
  const backoff = backoffDelay(attempts, settings, random01)
  const delayMs = Option.match(retryAfter, {
    onNone: () => backoff,
    onSome: (ra) => Math.max(backoff, Math.min(ra, settings.retryAfterMaxMs))
  })
  return Decision.Retry({ nextAttemptAt: now + delayMs, delayMs, attempts, error })
}

// -------------------------------------------------------------------------------------------------------------------
// Adaptive per-region limit (docs/routing.md#fair-adaptive-delivery)
// -------------------------------------------------------------------------------------------------------------------

/**
 * The damping of the adaptive limit: at most one halving, and at most one raise, per this many ms, and no raise within
 * this long of a halving (without it the limit climbs back within milliseconds of a halving and the region sees a
 * storm of 503s).
 *
 * @since 0.3.0
 * @category policy
 */
export const LIMIT_STEP_MS = 1_000

/**
 * What one answer of a region says about its load: `success` (2xx), `overload` (429, 503, a timeout, a refused or
 * failed connection), `other` (any other answer: the region is up but did not take it).
 *
 * @since 0.3.0
 * @category models
 */
export type LoadSignal = "success" | "overload" | "other"

/**
 * The load signal of an attempt's outcome: a status, or `"timeout"` / `"connection"` (`RegionTransportError.kind`).
 *
 * @since 0.3.0
 * @category policy
 */
export const loadSignal = (outcome: number | "timeout" | "connection"): LoadSignal => {
  if (typeof outcome !== "number") return "overload"
  if (outcome >= 200 && outcome < 300) return "success"
  return outcome === 429 || outcome === 503 ? "overload" : "other"
}

/**
 * The adaptive in-flight limit of one region in one worker.
 *
 * @since 0.3.0
 * @category models
 */
export interface RegionLimit {
  /** Requests to the region in flight at once, in `[1, concurrency]`. */
  readonly limit: number
  /** Slow start: the limit doubles (at most once a `LIMIT_STEP_MS`) until the first halving. */
  readonly slowStart: boolean
  /** Successes in a row since the last change of the limit or the last answer that was not a success. */
  readonly successes: number
  /** When the limit was last halved (`-Infinity`: never). */
  readonly halvedAt: number
  /** When the limit was last raised, doubled or by one (`-Infinity`: never). */
  readonly raisedAt: number
}

const clampLimit = (n: number, settings: Pick<Settings, "concurrency">) =>
  Math.max(1, Math.min(Math.floor(n), settings.concurrency))

/**
 * A region's limit before its first answer: `regionConcurrency` clamped to `[1, concurrency]`, in slow start; with
 * `adaptive: false`, `concurrency` (and `limitAfter` never moves it).
 *
 * @since 0.3.0
 * @category policy
 */
export const limitStart = (
  settings: Pick<Settings, "regionConcurrency" | "concurrency" | "adaptive">
): RegionLimit => ({
  limit: clampLimit(settings.adaptive ? settings.regionConcurrency : settings.concurrency, settings),
  slowStart: settings.adaptive,
  successes: 0,
  halvedAt: Number.NEGATIVE_INFINITY,
  raisedAt: Number.NEGATIVE_INFINITY
})

/**
 * The limit after one answer (AIMD), at `now`; the limit stays within `[1, concurrency]`:
 *
 * - `overload`: halved (rounded down, at least 1), at most once a `LIMIT_STEP_MS` (the answers of requests sent under
 *   the old limit do not halve it again); the first halving ends slow start; the run of successes starts over;
 * - `success`: in slow start, doubled when the last raise is at least `LIMIT_STEP_MS` old; after it, raised by one
 *   after as many successes in a row as the current limit, when the last raise and the last halving are both at least
 *   `LIMIT_STEP_MS` old (successes beyond the limit keep counting until then);
 * - `other`: the limit stays; the run of successes starts over.
 *
 * With `adaptive: false` the state never changes. Pure.
 *
 * @since 0.3.0
 * @category policy
 */
export const limitAfter = (
  state: RegionLimit,
  signal: LoadSignal,
  now: number,
  settings: Pick<Settings, "concurrency" | "adaptive">
): RegionLimit => {
  if (!settings.adaptive) return state
  switch (signal) {
    case "other":
      return state.successes === 0 ? state : { ...state, successes: 0 }
    case "overload": {
      if (now - state.halvedAt < LIMIT_STEP_MS) return state.successes === 0 ? state : { ...state, successes: 0 }
      return {
        limit: clampLimit(state.limit / 2, settings),
        slowStart: false,
        successes: 0,
        halvedAt: now,
        raisedAt: state.raisedAt
      }
    }
    case "success": {
      const successes = state.successes + 1
      const mayRaise = state.limit < settings.concurrency && now - state.raisedAt >= LIMIT_STEP_MS &&
        now - state.halvedAt >= LIMIT_STEP_MS
      if (mayRaise && state.slowStart) {
        return { ...state, limit: clampLimit(state.limit * 2, settings), successes: 0, raisedAt: now }
      }
      if (mayRaise && successes >= state.limit) {
        return { ...state, limit: clampLimit(state.limit + 1, settings), successes: 0, raisedAt: now }
      }
      return { ...state, successes }
    }
  }
}
