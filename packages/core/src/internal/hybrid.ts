/**
 * The deadline-aware hybrid (docs/routing.md#deadline-aware-hybrid): `Gateway`'s interpretation of a `Hybrid` decision.
 *
 * Forward live within `budgetMs` (the attempt is interrupted past it); relay as docs/routing.md#synchronous-proxy says when the region(s) answered in
 * time, else answer the provider's `fallback` — only once the stored copies are committed — with one payload per
 * target region in mailbox `<provider>:<region>:<integrationId>`, carrying the reply target. The live attempt and
 * the stored copy share one `x-cellgate-delivery-id`. An event key (`dedupe`) already accepted by the fleet within
 * its TTL is answered 200 and neither forwarded nor stored.
 *
 * @internal
 */
import { Clock, Effect, Either, Option } from "effect"
import type { Hybrid, Region, WebhookRequest, WebhookResponse } from "../Domain.js"
import type { RegionTransportError, StoreUnavailable } from "../Errors.js"
import { forwardableHeaders } from "../Forwarding.js"
import type { IdGenerator } from "../IdGenerator.js"
import type { RegionName } from "../Ids.js"
import * as Mailbox from "../Mailbox.js"
import * as Metrics from "../Metrics.js"
import type { NewPayload, Outbox } from "../Outbox.js"
import type { RegionResponse } from "../RegionClient.js"
import type { RegionDirectory } from "../RegionDirectory.js"
import { relay } from "../Responses.js"
import * as StoreOutage from "../StoreOutage.js"
import * as Tracing from "../Tracing.js"

/** What the interpretation needs from the gateway (looked up once, when the gateway is built). */
export interface Deps {
  readonly outbox: Outbox["Type"]
  readonly directory: RegionDirectory["Type"]
  readonly ids: IdGenerator["Type"]
  /** The gateway's one live forward (headers, signing, the answer cap), with the hybrid's id and timeout. */
  readonly forwardTo: (
    region: Region,
    request: WebhookRequest,
    options: { readonly deliveryId: string; readonly timeoutMs: number }
  ) => Effect.Effect<RegionResponse, RegionTransportError>
}

/** One live attempt within the budget: `None` when the budget ran out first (the attempt was interrupted). */
type Attempt = Option.Option<Either.Either<RegionResponse, RegionTransportError>>

const EMPTY = new Uint8Array(0)
const dropped: WebhookResponse = { status: 200, headers: {}, body: EMPTY }

const is2xx = (a: RegionResponse) => a.status >= 200 && a.status < 300 && a.truncated !== true

/** Why the live attempt did not answer in time, for the log (never the request or the answer). */
const failureOf = (attempt: Attempt): string =>
  Option.match(attempt, {
    onNone: () => "budget",
    onSome: Either.match({
      onLeft: (e) => e.kind === "timeout" ? "budget" : "unreachable",
      onRight: (a) => a.truncated === true ? "answer_too_large" : `status_${a.status}`
    })
  })

/**
 * The interpretation of `Hybrid` decisions over `deps`. Fails only with `StoreUnavailable` (the stored copy could
 * not be committed: the gateway answers 503 and the provider retries).
 */
export const make = (deps: Deps) => {
  const { directory, forwardTo, ids, outbox } = deps

  const store = Effect.fnUntraced(function*(
    request: WebhookRequest,
    d: Hybrid,
    regions: ReadonlyArray<RegionName>,
    deliveryId: string,
    withReply: boolean
  ) {
    if (regions.length === 0) return
    const headers = forwardableHeaders(request.headers)
    const payloads: Array<NewPayload> = regions.map((region) => ({
      mailbox: Mailbox.name(d.mailboxPrefix, region, d.integrationId),
      provider: d.provider,
      region,
      integrationId: d.integrationId,
      method: request.method,
      path: request.path,
      headers,
      body: request.body,
      receivedAt: request.receivedAt,
      deliveryId,
      replyTarget: withReply ? d.replyTarget : null
    }))
    const start = yield* Clock.currentTimeMillis
    // the ingest span's context goes with each copy, as Gateway's enqueue does (none when tracing is off)
    const traceContext = Option.getOrNull(yield* Tracing.currentTraceparent)
    yield* outbox.enqueue(traceContext === null ? payloads : payloads.map((p) => ({ ...p, traceContext })))
    const end = yield* Clock.currentTimeMillis
    yield* Metrics.enqueueSeconds.update((end - start) / 1000)
  })

  const interpret = Effect.fnUntraced(function*(request: WebhookRequest, d: Hybrid) {
    const started = yield* Clock.currentTimeMillis
    const budgetMs = Math.max(0, d.budgetMs)
    // fleet-wide event dedupe: the record is written first (first writer wins), and removed again when the request
    // ends up not accepted (the store failed). A store that cannot record it does not stop the request.
    let remembered = false
    if (d.dedupe !== null) {
      const { key, ttlMs } = d.dedupe
      const fresh = yield* outbox.remember(key, { now: started, until: started + ttlMs }).pipe(
        Effect.catchTag("StoreUnavailable", (e) => Effect.as(StoreOutage.report(e), true))
      )
      if (!fresh && d.dedupe.retry !== false) {
        yield* Metrics.countDropped(d.provider, "retry")
        yield* Effect.logInfo("hybrid: event already accepted; dropped").pipe(
          Effect.annotateLogs({ provider: d.provider, integration_id: d.integrationId })
        )
        return dropped
      }
      // a first delivery whose key is already recorded (not a retry) goes on, and leaves the record to its owner
      remembered = fresh
    }

    const targets: ReadonlyArray<RegionName> = d.mode === "first" ? d.regions.slice(0, 1) : d.regions
    const live: Array<Region> = []
    for (const name of targets) {
      const region = yield* directory.byName(name)
      if (Option.isSome(region)) live.push(region.value)
    }
    // one id for the webhook: every live attempt and every stored copy carry it (a region that received the
    // interrupted attempt can drop the stored one), and the reply record is keyed by it
    const deliveryId = yield* ids.deliveryId
    const attempts: ReadonlyArray<Attempt> = yield* Effect.forEach(
      live,
      (region) =>
        forwardTo(region, request, { deliveryId, timeoutMs: budgetMs }).pipe(
          Effect.either,
          Effect.timeoutOption(budgetMs)
        ),
      { concurrency: "unbounded" }
    )

    const sync = (response: WebhookResponse) => Effect.as(Metrics.hybridTotal.update(1, d.provider, "sync"), response)
    const fallback = Effect.fnUntraced(function*(reason: string, stored: number) {
      yield* Metrics.hybridTotal.update(1, d.provider, "fallback")
      yield* Effect.logInfo("hybrid: fallback answer").pipe(
        Effect.annotateLogs({
          provider: d.provider,
          integration_id: d.integrationId,
          reason,
          stored,
          budget_ms: budgetMs,
          delivery_id: deliveryId
        })
      )
      return { status: d.fallback.status, headers: d.fallback.headers, body: d.fallback.body } as WebhookResponse
    })

    const answered = Effect.gen(function*() {
      if (d.mode === "first") {
        const attempt: Attempt = attempts[0] ?? Option.none()
        // docs/routing.md#synchronous-proxy, `first`: any answer but a 5xx (or one over the cap) is relayed as it is
        if (Option.isSome(attempt) && Either.isRight(attempt.value)) {
          const answer = attempt.value.right
          if (answer.status < 500 && answer.truncated !== true) return yield* sync(relay(live[0]!.name, answer))
        }
        const reason = live.length === 0 ? "no_region" : failureOf(attempt)
        if (!d.store) return yield* fallback(reason, 0)
        yield* store(request, d, targets, deliveryId, true)
        return yield* fallback(reason, targets.length)
      }
      // `all`: the regions that answered 2xx in time are done; the provider gets the first of them by name
      const done = new Set<RegionName>()
      let first: WebhookResponse | undefined
      live.forEach((region, i) => {
        const attempt = attempts[i]!
        if (Option.isSome(attempt) && Either.isRight(attempt.value) && is2xx(attempt.value.right)) {
          done.add(region.name)
          first ??= relay(region.name, attempt.value.right)
        }
      })
      const rest = targets.filter((name) => !done.has(name))
      if (first !== undefined) {
        // the user has an answer: the others are stored without the reply target
        if (d.store) yield* store(request, d, rest, deliveryId, false)
        return yield* sync(first)
      }
      const reason = live.length === 0 ? "no_region" : failureOf(attempts[0] ?? Option.none())
      if (!d.store) return yield* fallback(reason, 0)
      yield* store(request, d, targets, deliveryId, true)
      return yield* fallback(reason, targets.length)
    })

    return yield* answered.pipe(
      Effect.tapError(() =>
        remembered && d.dedupe !== null
          ? Effect.ignore(outbox.forget(d.dedupe.key))
          : Effect.void
      )
    )
  })

  return (request: WebhookRequest, d: Hybrid): Effect.Effect<WebhookResponse, StoreUnavailable> => interpret(request, d)
}
