/**
 * Durable delivery (`docs/outbox.md`): `drainMailbox` (one leased mailbox, head first, carrying out
 * `DeliveryPolicy.decide`, at most `drainSlice` payloads at a time), the worker that claims due mailboxes and drains
 * them (`run`), and `layer` / `layerWith`, the worker as a daemon layer. The worker waits on the outbox itself
 * (`Outbox.awaitWork`), so an enqueue of the same process wakes it with no extra wiring.
 *
 * Fair, adaptive delivery (docs/routing.md#fair-adaptive-delivery): the worker counts what it holds of each tenant and
 * claims tenant-fair (`fairShare`); its drains share one region gate, which keeps each region's requests in flight
 * within an adaptive limit (`DeliveryPolicy.limitAfter`, gauge `cellgate_region_concurrency{region}`) and pauses a
 * region that answered 429 or 503 with `Retry-After` (`cellgate_region_paused_total{region}`). Every attempt carries
 * `x-cellgate-sequence`, the payload's number in its mailbox. Time comes from Effect's `Clock` and randomness from Effect's `Random`, so
 * `TestClock` / `TestRandom` drive every schedule in tests; settings come from `DeliverySettings`, the worker's name
 * from `IdGenerator`.
 *
 * @example
 * ```ts
 * import { Delivery, Gateway, Outbox } from "@cellgate/core"
 * import { HttpRegionClient } from "@cellgate/adapters"
 * import { Layer } from "effect"
 *
 * // one outbox for both: the gateway's enqueues wake this process's worker
 * const AppLive = Layer.mergeAll(Gateway.layer, Delivery.layer).pipe(
 *   Layer.provide([Outbox.layerMemory, HttpRegionClient.layer, MyDirectoryLive])
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { Either } from "effect"
import { Cause, Clock, Effect, Exit, FiberSet, Layer, Metric, Option, Random } from "effect"
import * as DeliveryPolicy from "./DeliveryPolicy.js"
import * as DeliverySettings from "./DeliverySettings.js"
import type { ReplyTarget } from "./Domain.js"
import { Region } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { RegionTransportError } from "./Errors.js"
import { outgoingHeaders } from "./Forwarding.js"
import { IdGenerator } from "./IdGenerator.js"
import type { RegionName } from "./Ids.js"
import * as RegionGate from "./internal/regionGate.js"
import * as Metrics from "./Metrics.js"
import type { Lease, StoredPayload } from "./Outbox.js"
import { Outbox, unsafeMakeWakeSignal } from "./Outbox.js"
import type { RegionResponse } from "./RegionClient.js"
import { RegionClient } from "./RegionClient.js"
import { RegionDirectory } from "./RegionDirectory.js"
import * as ReplyClient from "./ReplyClient.js"
import * as StoreOutage from "./StoreOutage.js"
import * as Tracing from "./Tracing.js"

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
  /**
   * The drain attempted `drainSlice` payloads and stopped with more due: the mailbox is due again at once
   * (docs/routing.md#fair-adaptive-delivery).
   *
   * @since 0.3.0
   */
  readonly sliced: boolean
  /**
   * The drain stopped because the payload's region is paused (a 429 or 503 with `Retry-After`, in this worker): the
   * mailbox is due again when the pause ends; the payloads not sent were not attempted.
   *
   * @since 0.3.0
   */
  readonly paused: boolean
  /** When the mailbox is due again (given to `release`). */
  readonly nextDue: number
}

/** What happened to one payload. */
type Step =
  | { readonly _tag: "Gone" } // delivered or dead-lettered: the next payload may go
  | { readonly _tag: "Waiting"; readonly nextAttemptAt: number } // still in the outbox
  | { readonly _tag: "Paused"; readonly until: number } // not sent: its region is paused until then

const gone: Step = { _tag: "Gone" }

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

const transportError = (region: string, kind: "timeout" | "connection", detail: string) =>
  new RegionTransportError({ region, kind, detail })

const firstHeader = (v: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof v === "string" ? v : v?.[0]

/**
 * What an attempt's outcome tells the region's adaptive limit (docs/routing.md#fair-adaptive-delivery): 429, 503, a
 * timeout or a failed connection is an overload, and a 429 or 503 with `Retry-After` asks for a pause of the region.
 */
const feedbackOf = (
  sent: {
    readonly answer: Either.Either<RegionResponse, RegionTransportError>
    readonly end: number
  }
): RegionGate.Feedback => {
  const { answer, end } = sent
  if (answer._tag === "Left") return { signal: DeliveryPolicy.loadSignal(answer.left.kind) }
  const { headers, status } = answer.right
  const signal = DeliveryPolicy.loadSignal(status)
  if (status !== 429 && status !== 503) return { signal }
  const pause = DeliveryPolicy.parseRetryAfter(firstHeader(headers["retry-after"]), end)
  return Option.isSome(pause) ? { signal, pauseMs: pause.value } : { signal }
}

// -------------------------------------------------------------------------------------------------------------------
// Replies (docs/routing.md#deadline-aware-hybrid)
// -------------------------------------------------------------------------------------------------------------------

/** One send of a reply waits at most this long. */
const REPLY_TIMEOUT_MS = 5_000
/** The reply target's answer is not needed: read at most this much of it. */
const REPLY_ANSWER_BYTES = 65_536
const REPLY_BACKOFF_MS = 250

const encoder = new TextEncoder()

/**
 * After a stored delivery completed with a 2xx answer that has a body: the first such delivery of the webhook (the
 * reply record, `Outbox.claimReply`, keyed by the delivery id every copy shares) sends the answer to the reply target,
 * at most `ReplyClient.MAX_SENDS` times in all (a 5xx, a 429 or no answer is sent again; any other answer ends it),
 * counted in `cellgate_replies_total{provider,outcome}`. The payload is delivered either way: a reply that fails is
 * logged (with the target's host, never its path), never retried later.
 */
const replyOnce = Effect.fnUntraced(function*(p: StoredPayload, target: ReplyTarget, answer: RegionResponse) {
  if (answer.status < 200 || answer.status >= 300 || answer.body.length === 0) return
  const outbox = yield* Outbox
  const log = (message: string, fields: Record<string, unknown>) =>
    Effect.logWarning(message).pipe(
      Effect.annotateLogs({ provider: p.provider, delivery_id: p.deliveryId, payload_id: p.id, ...fields })
    )
  if (answer.truncated === true) {
    yield* Metrics.repliesTotal.update(1, p.provider, "failed")
    return yield* log("reply not sent: the region's answer is over delivery.maxAnswerBytes", {})
  }
  const now = yield* Clock.currentTimeMillis
  const claimed = yield* outbox.claimReply(p.deliveryId, now).pipe(
    Effect.catchTag("StoreUnavailable", (e) => Effect.as(StoreOutage.report(e), "unavailable" as const))
  )
  if (claimed === false) return
  if (claimed === "unavailable") {
    yield* Metrics.repliesTotal.update(1, p.provider, "failed")
    return yield* log("reply not sent: the reply record could not be written", {})
  }
  const request = ReplyClient.replyRequest(target, answer.body)
  const host = ReplyClient.hostOf(request.url)
  const split = ReplyClient.splitUrl(request.url)
  if (split === undefined) {
    yield* Metrics.repliesTotal.update(1, p.provider, "refused_host")
    return yield* log("reply not sent: the reply target is not an http(s) URL", {})
  }
  const custom = (yield* ReplyClient.ReplyClient).send
  const client = yield* RegionClient
  const region = new Region({ name: "reply" as RegionName, url: split.origin }, { disableValidation: true })
  const send = custom !== undefined
    ? custom(request, REPLY_TIMEOUT_MS)
    : client.send(region, {
      method: request.method,
      path: split.path,
      headers: request.headers,
      body: encoder.encode(request.body)
    }, { timeoutMs: REPLY_TIMEOUT_MS, maxAnswerBytes: REPLY_ANSWER_BYTES })
  let last = "no answer"
  for (let i = 0; i < ReplyClient.MAX_SENDS; i++) {
    if (i > 0) yield* Effect.sleep(REPLY_BACKOFF_MS * 2 ** (i - 1))
    const sent = yield* Effect.either(
      send.pipe(Effect.timeoutFail({
        duration: REPLY_TIMEOUT_MS + 1000,
        onTimeout: () => transportError("reply", "timeout", `no answer in ${REPLY_TIMEOUT_MS} ms`)
      }))
    )
    if (sent._tag === "Right" && sent.right.status >= 200 && sent.right.status < 300) {
      yield* Metrics.repliesTotal.update(1, p.provider, "ok")
      return yield* Effect.logInfo("reply sent").pipe(
        Effect.annotateLogs({ provider: p.provider, delivery_id: p.deliveryId, host, sends: i + 1 })
      )
    }
    if (sent._tag === "Right") {
      last = `status ${sent.right.status}`
      if (sent.right.status !== 429 && sent.right.status < 500) break
    } else last = sent.left.kind === "timeout" ? "timeout" : "unreachable"
  }
  yield* Metrics.repliesTotal.update(1, p.provider, "failed")
  yield* log("reply failed", { host, error: last })
})

/**
 * Drains one mailbox that `owner` has claimed: payloads in id order, each sent through `RegionClient` with the
 * `x-cellgate-*` headers (delivery id, attempt = attempts + 1, mailbox, sequence; signed when the region has a
 * secret). The first attempt of a payload is timed from its `receivedAt` in `cellgate_first_delivery_seconds{region}`.
 *
 * What happens to a payload after an attempt is `DeliveryPolicy.decide`'s decision, carried out here
 * (`Complete` → `complete`, `Retry` → `retry`, `DeadLetter` → `deadLetter`); a payload that `DeliveryPolicy.expired`
 * says may no longer be sent is dead-lettered without being sent;
 * - a defect while delivering a payload (a bug, a region secret that cannot sign) is a failed attempt of it, logged
 *   with its cause and stored as `DEFECT_ERROR`: retried, then dead-lettered; nothing is sent again uncounted;
 * - a strict mailbox stops at a payload that is waiting; a mailbox of a `skipOnFailureProviders` provider goes on past
 *   it, attempting only payloads whose own `nextAttemptAt` is due, and counts each out-of-order attempt in
 *   `cellgate_ordering_relaxed_total{reason="skip_on_failure"}`; such a mailbox with waiting payloads is due again
 *   after at most `SKIP_RECHECK_MS`, so that newly arrived payloads are not held back by an earlier one's backoff.
 *
 * Drain slices (docs/routing.md#fair-adaptive-delivery): one drain attempts at most `drainSlice` payloads (sent, or
 * dead-lettered unsent), then stops with the mailbox due at once (`sliced`), order unchanged; `0` drains to the end.
 *
 * Under the worker's region gate (`run`), each send first takes a slot of its region, waiting while the region has its
 * adaptive limit in flight (the lease renewed meanwhile); the answer feeds the limit. When the region is paused, the
 * drain does not wait: it stops (`paused`) with the mailbox due when the pause ends, and the payloads it did not send
 * are not counted as attempts. A drain run alone has no gate: nothing waits, nothing is paused.
 *
 * The lease is renewed as the drain goes; the drain stops at the first `LeaseLost` (or `StoreUnavailable`), and always
 * ends with `release(lease, nextDue)` — also when interrupted — where `nextDue` is the earliest time something in the
 * mailbox is due (now when it may be empty, or when it was sliced). Never fails.
 *
 * @since 0.1.0
 * @category delivery
 */
export const drainMailbox = Effect.fn("Delivery.drainMailbox")(function*(mailbox: string, owner: string) {
  const outbox = yield* Outbox
  const client = yield* RegionClient
  const directory = yield* RegionDirectory
  const settings = yield* DeliverySettings.DeliverySettings
  // traces (Tracing.ts): one flag read per drain; off, an attempt has no span and no work for them
  const tracing = yield* Tracing.Tracing
  // the worker's region gate (docs/routing.md#fair-adaptive-delivery); a drain run alone has none
  const gate = yield* RegionGate.CurrentGate
  yield* Effect.annotateCurrentSpan("mailbox", mailbox)

  const started = yield* Clock.currentTimeMillis
  let lastRenew = started
  let nextDue = started
  let sent = 0
  let delivered = 0
  let retried = 0
  let deadLettered = 0
  let skipped = 0
  // payloads this drain has handled (sent, or dead-lettered unsent), against `drainSlice`
  let attempted = 0
  let sliced = false
  let paused = false
  const lease = (now: number): Lease => ({ mailbox, owner, now })
  // one drain attempts at most `drainSlice` payloads, then gives its mailbox back due at once (`0`: no slice), so a
  // deep mailbox never holds a drain slot for long (docs/routing.md#fair-adaptive-delivery)
  const sliceDone = () => settings.drainSlice > 0 && attempted >= settings.drainSlice

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

  // carries out what the policy decided (the only place the drain writes an attempt's result)
  const carryOut = Effect.fnUntraced(function*(p: StoredPayload, decision: DeliveryPolicy.Decision, now: number) {
    if (tracing.enabled) yield* Tracing.annotate({ decision: decision._tag })
    switch (decision._tag) {
      case "Complete": {
        yield* outbox.complete(lease(now), p.id)
        delivered++
        yield* Metrics.deliveriesTotal.update(1, p.region, "ok")
        return gone
      }
      case "Retry": {
        const { attempts, delayMs, error, nextAttemptAt } = decision
        yield* outbox.retry(lease(now), p.id, { nextAttemptAt, error })
        retried++
        yield* Metrics.deliveriesTotal.update(1, p.region, "retry")
        yield* Effect.logInfo("delivery retry").pipe(
          Effect.annotateLogs({
            mailbox,
            payload_id: p.id,
            delivery_id: p.deliveryId,
            attempts,
            error,
            next_in_ms: delayMs
          })
        )
        return { _tag: "Waiting", nextAttemptAt } as Step
      }
      case "DeadLetter": {
        const { lastBody, lastStatus, reason } = decision
        yield* outbox.deadLetter(lease(now), p.id, { reason, lastStatus, lastBody })
        deadLettered++
        yield* Metrics.deliveriesTotal.update(1, p.region, "dead_letter")
        yield* Effect.logWarning("delivery dead-lettered").pipe(
          Effect.annotateLogs({ mailbox, payload_id: p.id, delivery_id: p.deliveryId, reason, last_status: lastStatus })
        )
        return gone
      }
    }
  })

  const settle = Effect.fnUntraced(function*(p: StoredPayload, answer: DeliveryPolicy.Answer) {
    const now = yield* Clock.currentTimeMillis
    const random = yield* Random.next
    const decision = DeliveryPolicy.decide(p, answer, now, settings, random)
    const step = yield* carryOut(p, decision, now)
    // delivered (the complete was accepted): the answer may go to the reply target, once per webhook
    if (decision._tag === "Complete" && answer._tag === "Answered" && p.replyTarget != null) {
      yield* replyOnce(p, p.replyTarget, answer.response)
    }
    return step
  })

  const attemptOnce = Effect.fnUntraced(function*(p: StoredPayload) {
    const now = yield* Clock.currentTimeMillis
    const late = DeliveryPolicy.expired(p, now, settings)
    if (Option.isSome(late)) return yield* carryOut(p, late.value, now)
    yield* renewIfDue(now)
    const found = yield* regionOf(p.region, now)
    if (Option.isNone(found)) {
      return yield* settle(p, DeliveryPolicy.Answer.NoAnswer({ error: `region ${p.region} is not in the directory` }))
    }
    const region: Region = found.value
    // built once the slot is taken: the signature's timestamp is the send's, however long the wait was
    const sendOnce = Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const headers = yield* outgoingHeaders(region, p.headers, p.body, {
        deliveryId: p.deliveryId,
        attempt: p.attempts + 1,
        mailbox,
        sequence: p.sequence
      }, at)
      // the attempt's span goes to the region as `traceparent`: the region's own trace joins the webhook's
      if (tracing.enabled) yield* Tracing.withTraceparent(headers)
      sent++
      if (p.attempts === 0) {
        yield* Metrics.firstDeliverySeconds.update(Math.max(0, at - p.receivedAt) / 1000, region.name)
      }
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
      yield* Metrics.deliverySeconds.update((end - at) / 1000, region.name)
      return { answer, end }
    })
    // waiting for a slot of the region, the lease is kept (renewIfDue, every third of it)
    const pass = yield* gate.send(
      region.name,
      {
        everyMs: Math.max(1, Math.floor(settings.leaseMs / 3)),
        tick: Effect.flatMap(Clock.currentTimeMillis, renewIfDue)
      },
      sendOnce,
      feedbackOf
    )
    if (pass._tag === "Paused") return { _tag: "Paused", until: pass.until } as Step
    const { answer } = pass.value
    if (tracing.enabled) {
      yield* Tracing.annotate(answer._tag === "Right" ? { status: answer.right.status } : { error: answer.left.kind })
    }
    if (answer._tag === "Left") return yield* settle(p, DeliveryPolicy.Answer.NoAnswer({ error: answer.left.message }))
    if (answer.right.truncated === true) yield* Metrics.truncatedTotal.update(1, "stored_answer")
    return yield* settle(p, DeliveryPolicy.Answer.Answered({ response: answer.right }))
  })

  // A defect while delivering one payload (a bug, a secret that cannot sign, a client that throws) is an attempt of
  // that payload like any other failure: retried with backoff, dead-lettered after `maxAttempts`. Without this the
  // drain would die and the mailbox be released without counting, so the same payload would fail again forever.
  const attemptCounted = (p: StoredPayload) =>
    attemptOnce(p).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.logError("delivery failed with a defect; counted as an attempt", Cause.die(defect)).pipe(
          Effect.annotateLogs({ mailbox, payload_id: p.id, delivery_id: p.deliveryId }),
          Effect.zipRight(settle(p, DeliveryPolicy.Answer.NoAnswer({ error: DEFECT_ERROR })))
        )
      )
    )
  // with tracing on, each attempt of a traced payload is a span under the webhook's ingest span (Tracing.delivery)
  const traced = (p: StoredPayload) =>
    tracing.enabled
      ? Tracing.delivery(p.traceContext, {
        provider: p.provider,
        mailbox,
        region: p.region,
        attempt: p.attempts + 1,
        "cellgate.delivery_id": p.deliveryId
      }, attemptCounted(p))
      : attemptCounted(p)
  const attempt = (p: StoredPayload) =>
    Effect.map(traced(p), (step) => {
      if (step._tag === "Paused") paused = true
      else attempted++
      return step
    })

  const strict = Effect.fnUntraced(function*(first: ReadonlyArray<StoredPayload>) {
    for (let page: ReadonlyArray<StoredPayload> | undefined = first;; page = undefined) {
      const batch = page ?? (yield* outbox.head(mailbox, PAGE))
      if (batch.length === 0) return Option.none<number>()
      for (const p of batch) {
        const now = yield* Clock.currentTimeMillis
        if (p.nextAttemptAt > now) return Option.some(p.nextAttemptAt)
        if (sliceDone()) {
          sliced = true
          return Option.some(now)
        }
        const step = yield* attempt(p)
        if (step._tag === "Waiting") return Option.some(step.nextAttemptAt)
        if (step._tag === "Paused") return Option.some(step.until)
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
          if (sliceDone()) {
            sliced = true
            return Option.some(now)
          }
          const step = yield* attempt(p)
          if (step._tag === "Paused") return Option.some(step.until)
          if (waiting.size > 0) {
            skipped++
            yield* Metrics.countRelaxed("skip_on_failure")
          }
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
    sliced,
    paused,
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
 * Options of `run` and `layerWith`.
 *
 * @since 0.2.0
 * @category models
 */
export interface WorkerOptions {
  /** The worker's name in leases, unique per process (default: `IdGenerator.workerName`). */
  readonly owner?: string
  /** Settings over those in context (`DeliverySettings`, the defaults unless provided). */
  readonly settings?: Partial<DeliverySettings.Settings>
}

/**
 * The delivery loop of one worker: claim up to `min(claimBatch, free slots)` due mailboxes for `leaseMs`, drain up to
 * `concurrency` of them at once, and when nothing more can be claimed wait `pollIntervalMs`, or until an enqueue of
 * this process (`Outbox.awaitWork`) or a drain finishing. Claims are tenant-fair: every claim carries `fairShare` and
 * what this worker holds of each tenant (claimed or being drained, given back when the drain ends;
 * docs/routing.md#fair-adaptive-delivery). The drains share one region gate (adaptive per-region limits and pauses,
 * in this worker only); with `adaptive: false` there is none (a fixed limit of `concurrency`, the first wave's
 * behaviour). While claims fail with `StoreUnavailable` it backs off
 * (`StoreOutage.claimRetryDelay`: 0.5 s doubling to 5 s; only an enqueue cuts it short), logs through the outage log
 * (one line per interval, with a count) and recovers by itself at the first claim that succeeds. Runs until
 * interrupted; interruption stops the claims, interrupts the drains and releases their leases (a request in flight
 * is sent again later: at-least-once).
 *
 * @since 0.2.0
 * @category delivery
 */
export const run = (
  options: WorkerOptions = {}
): Effect.Effect<never, never, Outbox | RegionClient | RegionDirectory> =>
  Effect.gen(function*() {
    const owner = options.owner ?? (yield* (yield* IdGenerator).workerName)
    const loop = loopOf(owner).pipe(Effect.annotateLogs({ owner }))
    return yield* (options.settings === undefined ? loop : DeliverySettings.withSettings(options.settings)(loop))
  })

const loopOf = (owner: string): Effect.Effect<never, never, Outbox | RegionClient | RegionDirectory> =>
  Effect.scoped(Effect.gen(function*() {
    const outbox = yield* Outbox
    const settings = yield* DeliverySettings.DeliverySettings
    // a drain finishing frees a slot: look for work again at once
    const slots = unsafeMakeWakeSignal()
    const drains = yield* FiberSet.make()
    // the mailboxes this worker holds (claimed or being drained), each with its tenant
    const active = new Map<string, string>()
    // what it holds of each tenant, for tenant-fair claims (docs/routing.md#fair-adaptive-delivery): counted across
    // claims, from `active` at each claim (at most `concurrency` entries), so there is no second count to keep
    const heldByTenant = () => {
      const held = new Map<string, number>()
      for (const tenant of active.values()) held.set(tenant, (held.get(tenant) ?? 0) + 1)
      return held
    }
    // one region gate per worker, shared by its drains: the adaptive limits and the pauses of this worker
    const gate = settings.adaptive ? RegionGate.make(settings) : RegionGate.none
    let gaugesAt = Number.NEGATIVE_INFINITY
    let claimFailures = 0
    yield* Effect.logInfo("delivery worker started").pipe(Effect.annotateLogs({ owner }))
    yield* Effect.addFinalizer(() => Effect.logInfo("delivery worker stopped").pipe(Effect.annotateLogs({ owner })))

    const cycle = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (now - gaugesAt >= GAUGE_INTERVAL_MS) {
        gaugesAt = now
        yield* updateOutboxGauges().pipe(Effect.catchAll(() => Effect.void))
      }
      const free = settings.concurrency - active.size
      let more = false
      if (free > 0) {
        const limit = Math.min(settings.claimBatch, free)
        const claimed = yield* outbox.claim({
          owner,
          now,
          leaseMs: settings.leaseMs,
          limit,
          fairShare: settings.fairShare,
          held: settings.fairShare > 0 ? heldByTenant() : undefined
        }).pipe(
          Effect.tap(() => {
            claimFailures = 0
          }),
          Effect.catchTag("StoreUnavailable", (e) => {
            claimFailures++
            return Effect.as(StoreOutage.report(e), [])
          })
        )
        for (const { mailbox, tenant } of claimed) {
          if (active.has(mailbox)) continue
          active.set(mailbox, tenant)
          yield* FiberSet.run(
            drains,
            drainMailbox(mailbox, owner).pipe(
              Effect.provideService(RegionGate.CurrentGate, gate),
              Effect.asVoid,
              Effect.catchAllCause((cause) =>
                Effect.logError("drain failed", cause).pipe(Effect.annotateLogs({ mailbox }))
              ),
              Effect.ensuring(Effect.suspend(() => {
                active.delete(mailbox)
                return slots.notify
              }))
            )
          )
        }
        more = claimed.length === limit && active.size < settings.concurrency
      }
      if (more) return
      if (claimFailures > 0) {
        // the store is down: a drain ending (it failed too) does not cut the backoff short, an enqueue does
        yield* outbox.awaitWork(StoreOutage.claimRetryDelay(claimFailures, settings.pollIntervalMs))
        return
      }
      yield* Effect.raceFirst(outbox.awaitWork(settings.pollIntervalMs), slots.awaitWork(settings.pollIntervalMs))
    })
    return yield* Effect.forever(cycle)
  }))

/**
 * The worker as a daemon layer, with options: it drains while the layer's scope is open and stops (releasing its
 * leases) when the scope closes.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWith = (
  options: WorkerOptions = {}
): Layer.Layer<never, never, Outbox | RegionClient | RegionDirectory> =>
  Layer.scopedDiscard(Effect.forkScoped(run(options)))

/**
 * The worker as a daemon layer (settings from `DeliverySettings`, its name from `IdGenerator`): it drains while the
 * layer's scope is open, is woken by every enqueue of this process, and stops (releasing its leases) when the scope
 * closes.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, Outbox | RegionClient | RegionDirectory> = layerWith()
