/**
 * Durable delivery (ROUTING.md §6, design/OUTBOX.md): the retry policy as pure functions, `drainMailbox` (one leased
 * mailbox, head first) and the worker that claims due mailboxes and drains them. Time comes from Effect's `Clock` and
 * randomness from Effect's `Random`, so `TestClock` / `TestRandom` drive every schedule in tests.
 *
 * Start the worker with `Delivery.workerLive(owner)` (it also provides the `DeliveryWake` that `enqueue` notifies), or
 * `Delivery.worker(owner)` under a `Delivery.wakeLayer` that the gateway shares.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Deferred, Effect, Exit, FiberSet, Layer, Metric, Option, Random, Ref } from "effect"
import type { Region } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { RegionTransportError } from "./Errors.js"
import { outgoingHeaders } from "./Forwarding.js"
import * as Metrics from "./Metrics.js"
import type { Lease, RegionResponse, StoredPayload } from "./Services.js"
import { Outbox, RegionClient, RegionDirectory } from "./Services.js"
import * as StoreOutage from "./StoreOutage.js"

/**
 * The `delivery` section of the configuration (INTERFACES.md), with its defaults.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeliveryConfig {
  /** How long the worker sleeps when nothing is due (a `DeliveryWake` notification cuts it short). */
  readonly pollIntervalMs: number
  /** Timeout of one request to a region. */
  readonly requestTimeoutMs: number
  /** Sends per payload before it is dead-lettered. */
  readonly maxAttempts: number
  readonly backoffBaseMs: number
  readonly backoffRate: number
  readonly backoffMaxMs: number
  /** The backoff is multiplied by a uniform factor in `[1 − jitter, 1 + jitter]`. */
  readonly jitter: number
  /** A longer `Retry-After` replaces the backoff, capped at this. */
  readonly retryAfterMaxMs: number
  /** Payloads older than this (from `receivedAt`) are dead-lettered without being sent. */
  readonly maxAgeMs: number
  /** Providers whose mailboxes go on past a failed head (ordering relaxed, counted). */
  readonly skipOnFailureProviders: ReadonlyArray<string>
  /** Mailboxes drained at once by one worker. */
  readonly concurrency: number
  readonly leaseMs: number
  /** Mailboxes claimed per claim query (at most the free drain slots). */
  readonly claimBatch: number
  /** A region's answer is read up to this many bytes; the rest is not read (the start is what is stored). */
  readonly maxAnswerBytes: number
}

/**
 * The defaults of INTERFACES.md.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultDeliveryConfig: DeliveryConfig = {
  pollIntervalMs: 500,
  requestTimeoutMs: 12_000,
  maxAttempts: 10,
  backoffBaseMs: 180_000,
  backoffRate: 1.4,
  backoffMaxMs: 3_600_000,
  jitter: 0.1,
  retryAfterMaxMs: 3_600_000,
  maxAgeMs: 259_200_000,
  skipOnFailureProviders: ["github"],
  concurrency: 16,
  leaseMs: 30_000,
  claimBatch: 32,
  maxAnswerBytes: 1_048_576
}

/**
 * The delivery settings in use; the defaults unless a layer or `Effect.provideService` says otherwise.
 *
 * @since 0.1.0
 * @category services
 */
export class DeliverySettings extends Context.Reference<DeliverySettings>()("@cellgate/core/DeliverySettings", {
  defaultValue: (): DeliveryConfig => defaultDeliveryConfig
}) {}

/**
 * Settings with some keys overridden (the rest defaults).
 *
 * @since 0.1.0
 * @category layers
 */
export const settingsLayer = (overrides: Partial<DeliveryConfig>): Layer.Layer<never> =>
  Layer.succeed(DeliverySettings, { ...defaultDeliveryConfig, ...overrides })

/**
 * Runs `effect` with some settings overridden (the others as currently provided).
 *
 * @since 0.1.0
 * @category layers
 */
export const withSettings = (overrides: Partial<DeliveryConfig>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    DeliverySettings,
    (current) => Effect.provideService(effect, DeliverySettings, { ...current, ...overrides })
  )

// -------------------------------------------------------------------------------------------------------------------
// Pure policy
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
  settings: Pick<DeliveryConfig, "backoffBaseMs" | "backoffRate" | "backoffMaxMs" | "jitter">,
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
 * What an answer means for delivery.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "ok" | "permanent" | "retryable"

const PERMANENT = new Set([400, 401, 403, 404, 409])

/**
 * ROUTING.md §6: 2xx → `ok`; 400, 401, 403, 404, 409 → `permanent`; every other status (1xx, 3xx — redirects are not
 * followed —, other 4xx, 5xx) and every transport error (timeout, refused, reset, DNS) → `retryable`.
 *
 * @since 0.1.0
 * @category policy
 */
export const classify = (answer: number | RegionTransportError): Outcome => {
  if (typeof answer !== "number") return "retryable"
  if (answer >= 200 && answer < 300) return "ok"
  return PERMANENT.has(answer) ? "permanent" : "retryable"
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

// -------------------------------------------------------------------------------------------------------------------
// Wake-up
// -------------------------------------------------------------------------------------------------------------------

/**
 * Lets the gateway wake the worker right after an enqueue instead of waiting for the next poll. `signal` returns an
 * effect that completes at the first `notify` after `signal` was called (take it *before* looking for work, so that a
 * notification in between is not lost). The default does nothing (the worker then just polls).
 *
 * @since 0.1.0
 * @category services
 */
export class DeliveryWake extends Context.Reference<DeliveryWake>()("@cellgate/core/DeliveryWake", {
  defaultValue: (): {
    readonly notify: Effect.Effect<void>
    readonly signal: Effect.Effect<Effect.Effect<void>>
  } => ({ notify: Effect.void, signal: Effect.succeed(Effect.never) })
}) {}

/**
 * A real `DeliveryWake`, for one process: every waiter is woken by a `notify`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWake: Effect.Effect<DeliveryWake["Type"]> = Effect.gen(function*() {
  const current = yield* Ref.make(yield* Deferred.make<void>())
  return {
    notify: Effect.flatMap(
      Deferred.make<void>(),
      (next) => Effect.flatMap(Ref.getAndSet(current, next), (previous) => Deferred.succeed(previous, undefined))
    ),
    signal: Effect.map(Ref.get(current), (d) => Deferred.await(d))
  }
})

/**
 * Provides a real `DeliveryWake`. Provide the same instance to the gateway and the worker (build it once).
 *
 * @since 0.1.0
 * @category layers
 */
export const wakeLayer: Layer.Layer<DeliveryWake> = Layer.effect(DeliveryWake, makeWake)

/**
 * Wakes the worker (a no-op without a `wakeLayer`).
 *
 * @since 0.1.0
 * @category delivery
 */
export const wake: Effect.Effect<void> = Effect.flatMap(DeliveryWake, (w) => w.notify)

// -------------------------------------------------------------------------------------------------------------------
// Drain
// -------------------------------------------------------------------------------------------------------------------

/**
 * What one drain did.
 *
 * @since 0.1.0
 * @category models
 */
export interface DrainResult {
  readonly mailbox: string
  /** Requests sent to a region. */
  readonly sent: number
  readonly delivered: number
  readonly retried: number
  readonly deadLettered: number
  /** Payloads attempted while an earlier payload of the mailbox was still waiting (skip-on-failure). */
  readonly skipped: number
  /** The drain stopped because a write was refused: another worker holds the mailbox now. */
  readonly leaseLost: boolean
  /** The store failed; the drain stopped. */
  readonly storeFailed: boolean
  /** When the mailbox is due again (given to `release`). */
  readonly nextDue: number
}

/** What happened to one payload. */
type Step =
  | { readonly _tag: "Gone" } // delivered or dead-lettered: the next payload may go
  | { readonly _tag: "Waiting"; readonly nextAttemptAt: number } // still in the outbox

const PAGE = 64

/** How long one drain reuses a region looked up in the directory. */
const REGION_CACHE_MS = 1_000

/**
 * A skip-on-failure mailbox with waiting payloads is due again at most this long after a drain (see `drainMailbox`).
 *
 * @since 0.1.0
 * @category policy
 */
export const SKIP_RECHECK_MS = 30_000

/**
 * The `lastError` of a payload whose attempt hit a defect (the cause is in the log, never in the store: it may
 * carry anything).
 *
 * @since 0.2.0
 * @category policy
 */
export const DEFECT_ERROR = "internal error while delivering (see the worker's log)"

const firstValue = (v: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof v === "string" ? v : v?.[0]

const transportError = (region: string, kind: "timeout" | "connection", detail: string) =>
  new RegionTransportError({ region, kind, detail })

/**
 * Drains one mailbox that `owner` has claimed: payloads in id order, each sent through `RegionClient` with the
 * `x-cellgate-*` headers (delivery id, attempt = attempts + 1, mailbox; signed when the region has a secret).
 *
 * - 2xx → `complete`; 400/401/403/404/409 → dead letter with the status and the start of the answer;
 * - otherwise → `retry` at `backoffDelay` (or a longer `Retry-After`, capped); the failure that uses up
 *   `maxAttempts` dead-letters instead;
 * - a payload that already has `maxAttempts` or is older than `maxAgeMs` is dead-lettered without being sent;
 * - a defect while delivering a payload (a bug, a region secret that cannot sign) is a failed attempt of it, logged
 *   with its cause and stored as `DEFECT_ERROR`: retried, then dead-lettered; nothing is sent again uncounted;
 * - a strict mailbox stops at a payload that is waiting; a mailbox of a `skipOnFailureProviders` provider goes on past
 *   it, attempting only payloads whose own `nextAttemptAt` is due, and counts each out-of-order attempt in
 *   `cellgate_ordering_relaxed_total{reason="skip_on_failure"}`; such a mailbox with waiting payloads is due again
 *   after at most `SKIP_RECHECK_MS`, so that newly arrived payloads are not held back by an earlier one's backoff.
 *
 * The lease is renewed as the drain goes; the drain stops at the first `LeaseLost` (or `StoreUnavailable`), and always
 * ends with `release(lease, nextDue)` — also when interrupted — where `nextDue` is the earliest time something in the
 * mailbox is due (now when it may be empty). Never fails.
 *
 * @since 0.1.0
 * @category delivery
 */
export const drainMailbox = Effect.fn("Delivery.drainMailbox")(function*(mailbox: string, owner: string) {
  const outbox = yield* Outbox
  const client = yield* RegionClient
  const directory = yield* RegionDirectory
  const settings = yield* DeliverySettings
  yield* Effect.annotateCurrentSpan("mailbox", mailbox)

  const started = yield* Clock.currentTimeMillis
  let lastRenew = started
  let nextDue = started
  let sent = 0
  let delivered = 0
  let retried = 0
  let deadLettered = 0
  let skipped = 0
  const lease = (now: number): Lease => ({ mailbox, owner, now })

  // The region of a payload, looked up at most once per REGION_CACHE_MS within one drain (every payload of a
  // mailbox goes to the same region): a directory change is seen by the next lookup, at most that much later.
  const regions = new Map<string, { readonly at: number; readonly region: Option.Option<Region> }>()
  const regionOf = (name: Region["name"], now: number) => {
    const cached = regions.get(name)
    if (cached !== undefined && now - cached.at < REGION_CACHE_MS && now >= cached.at) {
      return Effect.succeed(cached.region)
    }
    return Effect.map(directory.byName(name), (region) => {
      regions.set(name, { at: now, region })
      return region
    })
  }

  const renewIfDue = Effect.fnUntraced(function*(now: number) {
    if (now - lastRenew < settings.leaseMs / 3) return
    yield* outbox.renew(lease(now), settings.leaseMs)
    lastRenew = now
  })

  const toDeadLetter = Effect.fnUntraced(function*(
    p: StoredPayload,
    now: number,
    reason: string,
    lastStatus: number | null,
    lastBody: string | null
  ) {
    yield* outbox.deadLetter(lease(now), p.id, { reason, lastStatus, lastBody })
    deadLettered++
    yield* Metrics.deliveriesTotal.update(1, p.region, "dead_letter")
    yield* Effect.logWarning("delivery dead-lettered").pipe(
      Effect.annotateLogs({ mailbox, payload_id: p.id, delivery_id: p.deliveryId, reason, last_status: lastStatus })
    )
    return { _tag: "Gone" } as Step
  })

  const failed = Effect.fnUntraced(function*(
    p: StoredPayload,
    error: string,
    lastStatus: number | null,
    lastBody: string | null,
    retryAfter: Option.Option<number>
  ) {
    const now = yield* Clock.currentTimeMillis
    const attempts = p.attempts + 1
    if (attempts >= settings.maxAttempts) return yield* toDeadLetter(p, now, "max_attempts", lastStatus, lastBody)
    const random = yield* Random.next
    const backoff = backoffDelay(attempts, settings, random)
    const delay = Option.match(retryAfter, {
      onNone: () => backoff,
      onSome: (ra) => Math.max(backoff, Math.min(ra, settings.retryAfterMaxMs))
    })
    const nextAttemptAt = now + delay
    yield* outbox.retry(lease(now), p.id, { nextAttemptAt, error })
    retried++
    yield* Metrics.deliveriesTotal.update(1, p.region, "retry")
    yield* Effect.logInfo("delivery retry").pipe(
      Effect.annotateLogs({ mailbox, payload_id: p.id, delivery_id: p.deliveryId, attempts, error, next_in_ms: delay })
    )
    return { _tag: "Waiting", nextAttemptAt } as Step
  })

  const attemptOnce = Effect.fnUntraced(function*(p: StoredPayload) {
    const now = yield* Clock.currentTimeMillis
    if (p.attempts >= settings.maxAttempts) return yield* toDeadLetter(p, now, "max_attempts", null, p.lastError)
    if (now - p.receivedAt > settings.maxAgeMs) return yield* toDeadLetter(p, now, "max_age", null, p.lastError)
    yield* renewIfDue(now)
    const found = yield* regionOf(p.region, now)
    if (Option.isNone(found)) {
      return yield* failed(p, `region ${p.region} is not in the directory`, null, null, Option.none())
    }
    const region: Region = found.value
    const headers = yield* outgoingHeaders(region, p.headers, p.body, {
      deliveryId: p.deliveryId,
      attempt: p.attempts + 1,
      mailbox
    }, now)
    sent++
    const answer = yield* client.send(region, { method: p.method, path: p.path, headers, body: p.body }, {
      timeoutMs: settings.requestTimeoutMs,
      maxAnswerBytes: settings.maxAnswerBytes
    }).pipe(
      // a guard against a client that ignores its timeout
      Effect.timeoutFail({
        duration: settings.requestTimeoutMs + 1000,
        onTimeout: () => transportError(region.name, "timeout", `no answer in ${settings.requestTimeoutMs} ms`)
      }),
      Effect.either
    )
    const end = yield* Clock.currentTimeMillis
    yield* Metrics.deliverySeconds.update((end - now) / 1000, region.name)
    if (answer._tag === "Left") return yield* failed(p, answer.left.message, null, null, Option.none())
    const response: RegionResponse = answer.right
    if (response.truncated === true) yield* Metrics.truncatedTotal.update(1, "stored_answer")
    switch (classify(response.status)) {
      case "ok": {
        yield* outbox.complete(lease(end), p.id)
        delivered++
        yield* Metrics.deliveriesTotal.update(1, p.region, "ok")
        return { _tag: "Gone" } as Step
      }
      case "permanent":
        return yield* toDeadLetter(p, end, "permanent_failure", response.status, truncateBody(response.body))
      case "retryable":
        return yield* failed(
          p,
          `HTTP ${response.status}`,
          response.status,
          truncateBody(response.body),
          parseRetryAfter(firstValue(response.headers["retry-after"]), end)
        )
    }
  })

  // A defect while delivering one payload (a bug, a secret that cannot sign, a client that throws) is an attempt of
  // that payload like any other failure: retried with backoff, dead-lettered after `maxAttempts`. Without this the
  // drain would die and the mailbox be released without counting, so the same payload would fail again forever.
  const attempt = (p: StoredPayload) =>
    attemptOnce(p).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.logError("delivery failed with a defect; counted as an attempt", Cause.die(defect)).pipe(
          Effect.annotateLogs({ mailbox, payload_id: p.id, delivery_id: p.deliveryId }),
          Effect.zipRight(failed(p, DEFECT_ERROR, null, null, Option.none()))
        )
      )
    )

  const strict = Effect.fnUntraced(function*(first: ReadonlyArray<StoredPayload>) {
    for (let page: ReadonlyArray<StoredPayload> | undefined = first;; page = undefined) {
      const batch = page ?? (yield* outbox.head(mailbox, PAGE))
      if (batch.length === 0) return Option.none<number>()
      for (const p of batch) {
        const now = yield* Clock.currentTimeMillis
        if (p.nextAttemptAt > now) return Option.some(p.nextAttemptAt)
        const step = yield* attempt(p)
        if (step._tag === "Waiting") return Option.some(step.nextAttemptAt)
      }
    }
  })

  const skipping = Effect.fnUntraced(function*(first: ReadonlyArray<StoredPayload>) {
    const waiting = new Set<number>()
    let earliest = Number.POSITIVE_INFINITY
    for (let page: ReadonlyArray<StoredPayload> | undefined = first;; page = undefined) {
      const batch = page ?? (yield* outbox.head(mailbox, waiting.size + PAGE))
      const fresh = batch.filter((p) => !waiting.has(p.id))
      if (fresh.length === 0) break
      for (const p of fresh) {
        const now = yield* Clock.currentTimeMillis
        let due = p.nextAttemptAt
        if (due <= now) {
          if (waiting.size > 0) {
            skipped++
            yield* Metrics.countRelaxed("skip_on_failure")
          }
          const step = yield* attempt(p)
          if (step._tag === "Gone") continue
          due = step.nextAttemptAt
        }
        waiting.add(p.id)
        earliest = Math.min(earliest, due)
      }
    }
    if (waiting.size === 0) return Option.none<number>()
    // the store does not move a mailbox's due time earlier when a payload arrives, so look again soon: a new payload
    // of this mailbox must not wait for the backoff of an earlier, failed one
    const now = yield* Clock.currentTimeMillis
    return Option.some(Math.min(earliest, now + SKIP_RECHECK_MS))
  })

  // the first page also tells the provider (every payload of a mailbox has the same one)
  const drain = Effect.flatMap(outbox.head(mailbox, PAGE), (first) => {
    const provider = first[0]?.provider
    return provider !== undefined && settings.skipOnFailureProviders.includes(provider)
      ? skipping(first)
      : strict(first)
  })

  const run = drain.pipe(
    Effect.tap(Option.match({
      onNone: () =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          nextDue = now
        }),
      onSome: (due) =>
        Effect.sync(() => {
          nextDue = due
        })
    })),
    Effect.as({ leaseLost: false, storeFailed: false }),
    Effect.catchTags({
      LeaseLost: () =>
        Effect.as(
          Effect.logWarning("lease lost; drain stopped").pipe(Effect.annotateLogs({ mailbox, owner })),
          { leaseLost: true, storeFailed: false }
        ),
      StoreUnavailable: (e: StoreUnavailable) =>
        Effect.as(StoreOutage.report(e), { leaseLost: false, storeFailed: true })
    })
  )

  const releaseLease = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    outbox.release(lease(now), nextDue).pipe(
      Effect.catchTag("StoreUnavailable", StoreOutage.report)
    ))

  const flags = yield* run.pipe(Effect.onExit((exit) => {
    if (Exit.isSuccess(exit)) return Effect.void
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      // interrupted (shutdown): what was in flight is due again now (at-least-once); a defect: back off
      nextDue = Exit.isInterrupted(exit) ? now : now + settings.backoffBaseMs
      return releaseLease
    })
  }))
  yield* releaseLease
  const result: DrainResult = {
    mailbox,
    sent,
    delivered,
    retried,
    deadLettered,
    skipped,
    leaseLost: flags.leaseLost,
    storeFailed: flags.storeFailed,
    nextDue
  }
  return result
}, (effect, mailbox) => Effect.annotateLogs(effect, { mailbox }))

// -------------------------------------------------------------------------------------------------------------------
// Gauges
// -------------------------------------------------------------------------------------------------------------------

/**
 * Sets `cellgate_outbox_depth{region}` and `cellgate_outbox_oldest_age_seconds{region}` from `Outbox.mailboxes`
 * (regions of the directory with nothing waiting are set to 0). The worker runs it every few seconds; an HTTP
 * `/metrics` handler may run it too.
 *
 * @since 0.1.0
 * @category delivery
 */
export const updateOutboxGauges = Effect.fn("Delivery.updateOutboxGauges")(function*() {
  const outbox = yield* Outbox
  const directory = yield* RegionDirectory
  const now = yield* Clock.currentTimeMillis
  const infos = yield* outbox.mailboxes
  const regions = yield* directory.all
  const depth = new Map<string, number>()
  const oldest = new Map<string, number>()
  for (const r of regions) depth.set(r.name, 0)
  for (const m of infos) {
    depth.set(m.region, (depth.get(m.region) ?? 0) + m.depth)
    if (m.oldestReceivedAt !== null) {
      oldest.set(m.region, Math.min(oldest.get(m.region) ?? Number.POSITIVE_INFINITY, m.oldestReceivedAt))
    }
  }
  for (const [region, d] of depth) {
    yield* Metric.set(Metrics.outboxDepth(region), d)
    const o = oldest.get(region)
    yield* Metric.set(Metrics.outboxOldestAgeSeconds(region), o === undefined ? 0 : Math.max(0, (now - o) / 1000))
  }
})

// -------------------------------------------------------------------------------------------------------------------
// Worker
// -------------------------------------------------------------------------------------------------------------------

const GAUGE_INTERVAL_MS = 5_000

/**
 * The delivery loop of one worker: claim up to `min(claimBatch, free slots)` due mailboxes for `leaseMs`, drain up to
 * `concurrency` of them at once, and when nothing more can be claimed sleep `pollIntervalMs` or until woken
 * (`DeliveryWake.notify`, or a drain finishing). While claims fail with `StoreUnavailable` it backs off
 * (`StoreOutage.claimRetryDelay`: 0.5 s doubling to 5 s; only a wake cuts it short), logs through the outage log
 * (one line per interval, with a count) and recovers by itself at the first claim that succeeds. Runs until
 * interrupted; interruption stops the claims, interrupts the drains and releases their leases (a request in flight
 * is sent again later: at-least-once).
 *
 * @since 0.1.0
 * @category delivery
 */
export const runWorker = (
  owner: string
): Effect.Effect<never, never, Outbox | RegionClient | RegionDirectory> =>
  Effect.scoped(Effect.gen(function*() {
    const outbox = yield* Outbox
    const settings = yield* DeliverySettings
    const wakeUp = yield* DeliveryWake
    const local = yield* makeWake
    const drains = yield* FiberSet.make()
    const active = new Set<string>()
    let gaugesAt = Number.NEGATIVE_INFINITY
    let claimFailures = 0
    yield* Effect.logInfo("delivery worker started").pipe(Effect.annotateLogs({ owner }))
    yield* Effect.addFinalizer(() => Effect.logInfo("delivery worker stopped").pipe(Effect.annotateLogs({ owner })))

    const cycle = Effect.gen(function*() {
      const woken = yield* wakeUp.signal
      const slot = yield* local.signal
      const now = yield* Clock.currentTimeMillis
      if (now - gaugesAt >= GAUGE_INTERVAL_MS) {
        gaugesAt = now
        yield* updateOutboxGauges().pipe(Effect.catchAll(() => Effect.void))
      }
      const free = settings.concurrency - active.size
      let more = false
      if (free > 0) {
        const limit = Math.min(settings.claimBatch, free)
        const claimed = yield* outbox.claim({ owner, now, leaseMs: settings.leaseMs, limit }).pipe(
          Effect.tap(() => {
            claimFailures = 0
          }),
          Effect.catchTag("StoreUnavailable", (e) => {
            claimFailures++
            return Effect.as(StoreOutage.report(e), [])
          })
        )
        for (const mailbox of claimed) {
          if (active.has(mailbox)) continue
          active.add(mailbox)
          yield* FiberSet.run(
            drains,
            drainMailbox(mailbox, owner).pipe(
              Effect.asVoid,
              Effect.catchAllCause((cause) =>
                Effect.logError("drain failed", cause).pipe(Effect.annotateLogs({ mailbox }))
              ),
              Effect.ensuring(Effect.suspend(() => {
                active.delete(mailbox)
                return local.notify
              }))
            )
          )
        }
        more = claimed.length === limit && active.size < settings.concurrency
      }
      if (more) return
      if (claimFailures > 0) {
        // the store is down: a drain ending (it failed too) does not cut the backoff short, an enqueue does
        yield* Effect.raceAll([
          Effect.sleep(StoreOutage.claimRetryDelay(claimFailures, settings.pollIntervalMs)),
          woken
        ])
        return
      }
      yield* Effect.raceAll([Effect.sleep(settings.pollIntervalMs), woken, slot])
    })
    return yield* Effect.forever(cycle)
  })).pipe(Effect.annotateLogs({ owner }))

/**
 * The worker as a daemon layer: it runs while the layer's scope is open and stops (releasing its leases) when the
 * scope closes. `owner` names the worker in leases (unique per process; default: a random UUID).
 *
 * @since 0.1.0
 * @category layers
 */
export const worker = (owner?: string): Layer.Layer<never, never, Outbox | RegionClient | RegionDirectory> =>
  Layer.scopedDiscard(Effect.forkScoped(runWorker(owner ?? `worker-${crypto.randomUUID()}`)))

/**
 * `worker` with its own `DeliveryWake`, which it also provides: give the result to the gateway so that each enqueue
 * wakes the worker at once.
 *
 * @since 0.1.0
 * @category layers
 */
export const workerLive = (
  owner?: string
): Layer.Layer<DeliveryWake, never, Outbox | RegionClient | RegionDirectory> =>
  worker(owner).pipe(Layer.provideMerge(wakeLayer))
