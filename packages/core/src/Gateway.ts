/**
 * `routeWebhook` (classify → provider → decision) and `handleWebhook` (interpret the decision through the services),
 * so that an HTTP adapter only converts requests and responses.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Option } from "effect"
import { wake as wakeDelivery } from "./Delivery.js"
import type { Region, RouteOutcome, WebhookRequest, WebhookResponse } from "./Domain.js"
import { control } from "./Domain.js"
import type { RegionNotFound, StoreUnavailable } from "./Errors.js"
import type { RegionTransportError } from "./Errors.js"
import { forwardableHeaders, outgoingHeaders, relayableHeaders } from "./Forwarding.js"
import type { IntegrationId, RegionName } from "./Ids.js"
import * as Metrics from "./Metrics.js"
import type { ProviderContext } from "./Provider.js"
import { classify, ProviderRegistry } from "./Provider.js"
import * as Redaction from "./Redaction.js"
import type { NewPayload, RegionResponse } from "./Services.js"
import { ControlHandler, Outbox, RegionClient, RegionDirectory } from "./Services.js"
import * as StoreOutage from "./StoreOutage.js"

/**
 * Settings of the request path.
 *
 * @since 0.1.0
 * @category services
 */
export class GatewaySettings extends Context.Reference<GatewaySettings>()("@cellgate/core/GatewaySettings", {
  defaultValue: (): {
    readonly requestTimeoutMs: number
    /** A relayed answer longer than this is 502 `answer_too_large` (default 1 MiB, `delivery.maxAnswerBytes`). */
    readonly maxAnswerBytes?: number
  } => ({ requestTimeoutMs: 12_000 })
}) {}

/**
 * The default of `delivery.maxAnswerBytes` (1 MiB).
 *
 * @since 0.2.0
 * @category models
 */
export const DEFAULT_MAX_ANSWER_BYTES = 1_048_576

/**
 * Everything `handleWebhook` needs.
 *
 * @since 0.1.0
 * @category models
 */
export type GatewayContext = ProviderContext | ProviderRegistry | Outbox | RegionClient | ControlHandler

/**
 * Routes without side effects other than reads (and the volume counter): the decision and what it was made from.
 *
 * @since 0.1.0
 * @category routing
 */
export const routeWebhook = (
  request: WebhookRequest
): Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable, ProviderContext | ProviderRegistry> =>
  Effect.flatMap(ProviderRegistry, (registry) => {
    const c = classify(request.path, registry)
    if (c._tag === "Provider") return c.provider.route(request, c.match)
    const outcome: RouteOutcome = {
      provider: c.provider,
      decision: control,
      reason: c.reason,
      integration: null,
      organizations: [],
      regions: []
    }
    if (c.reason !== "unknown provider" && c.reason !== "empty provider") return Effect.succeed(outcome)
    return Effect.as(
      Effect.logWarning("unknown provider").pipe(
        Effect.annotateLogs({
          provider: Redaction.redactPath(c.provider ?? ""),
          path: redactPath(request.path, registry)
        })
      ),
      outcome
    )
  })

/**
 * The path with secrets replaced, for logs: core's structural redactor (`Redaction.redactPath`: Jira Server tokens,
 * JWTs and `jwt` query values, whatever the spelling of the route), then each provider's own `redactPath`, if any.
 *
 * @since 0.1.0
 * @category utils
 */
export const redactPath = (path: string, registry: ProviderRegistry["Type"]): string => {
  let out = Redaction.redactPath(path)
  for (const p of registry.all) if (p.redactPath !== undefined) out = p.redactPath(out)
  return out
}

const EMPTY = new Uint8Array(0)

/**
 * An answer cellgate makes itself: `{"error": code, "message": text}` as JSON (INTERFACES.md).
 *
 * @since 0.1.0
 * @category responses
 */
export const errorResponse = (
  status: number,
  error: string,
  message: string,
  headers: Record<string, string> = {}
): WebhookResponse => ({
  status,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify({ error, message })
})

/**
 * One region's answer relayed to the sender, with `x-cellgate-region` (repeated headers stay separate); an answer
 * longer than the cap (`truncated`) is never relayed in part: 502 `answer_too_large`.
 *
 * @since 0.1.0
 * @category responses
 */
export const relay = (region: RegionName, answer: RegionResponse): WebhookResponse =>
  answer.truncated === true
    ? errorResponse(502, "answer_too_large", `the answer of region ${region} is larger than delivery.maxAnswerBytes`, {
      "x-cellgate-region": region
    })
    : {
      status: answer.status,
      headers: { ...relayableHeaders(answer.headers), "x-cellgate-region": region },
      body: answer.body
    }

const transportResponse = (error: RegionTransportError): WebhookResponse =>
  error.kind === "timeout"
    ? errorResponse(504, "region_timeout", error.message)
    : errorResponse(502, "region_unreachable", error.message)

const forwardTo = Effect.fnUntraced(function*(region: Region, request: WebhookRequest) {
  const client = yield* RegionClient
  const { maxAnswerBytes = DEFAULT_MAX_ANSWER_BYTES, requestTimeoutMs } = yield* GatewaySettings
  const now = yield* Clock.currentTimeMillis
  const headers = yield* outgoingHeaders(region, request.headers, request.body, {
    deliveryId: crypto.randomUUID(),
    attempt: 1
  }, now)
  const answer = yield* client.send(
    region,
    { method: request.method, path: request.path, headers, body: request.body },
    {
      timeoutMs: requestTimeoutMs,
      maxAnswerBytes
    }
  )
  if (answer.truncated === true) {
    yield* Metrics.truncatedTotal.update(1, "relayed_answer")
    yield* Effect.logWarning("region answer over delivery.maxAnswerBytes: not relayed").pipe(
      Effect.annotateLogs({ region: region.name, max_answer_bytes: maxAnswerBytes })
    )
  }
  return answer
})

/**
 * ROUTING.md §7: `first` relays the first region's answer; `all` sends to every region in parallel and relays the
 * first 2xx in region-name order, else the first answer in that order; all failing → 502 (504 if the first failure
 * in order is a timeout and nothing answered).
 *
 * @since 0.1.0
 * @category forwarding
 */
export const forward = Effect.fn("forward")(function*(
  request: WebhookRequest,
  names: ReadonlyArray<RegionName>,
  mode: "first" | "all"
) {
  const directory = yield* RegionDirectory
  const regions: Array<Region> = []
  for (const name of mode === "first" ? names.slice(0, 1) : names) {
    const region = yield* directory.byName(name)
    if (Option.isSome(region)) regions.push(region.value)
  }
  if (regions.length === 0) return errorResponse(502, "region_unreachable", "no region to forward to")
  if (mode === "first") {
    const region = regions[0]!
    return yield* forwardTo(region, request).pipe(
      Effect.match({ onFailure: transportResponse, onSuccess: (answer) => relay(region.name, answer) })
    )
  }
  const answers = yield* Effect.forEach(regions, (region) => Effect.either(forwardTo(region, request)), {
    concurrency: "unbounded"
  })
  let firstAnswer: WebhookResponse | undefined
  for (let i = 0; i < regions.length; i++) {
    const a = answers[i]!
    if (a._tag === "Left") continue
    const relayed = relay(regions[i]!.name, a.right)
    if (a.right.status >= 200 && a.right.status < 300 && a.right.truncated !== true) return relayed
    firstAnswer ??= relayed
  }
  if (firstAnswer !== undefined) return firstAnswer
  return errorResponse(502, "region_unreachable", "every region failed")
})

/**
 * Stores one payload per target, then answers 202 — only once the write is durable.
 *
 * @since 0.1.0
 * @category delivery
 */
export const enqueue = Effect.fnUntraced(function*(
  request: WebhookRequest,
  provider: string,
  integrationId: IntegrationId | undefined,
  targets: ReadonlyArray<{ readonly region: RegionName; readonly mailbox: string }>
) {
  const outbox = yield* Outbox
  const headers = forwardableHeaders(request.headers)
  const payloads = targets.map((t): NewPayload => ({
    mailbox: t.mailbox,
    provider,
    region: t.region,
    integrationId: integrationId ?? null,
    method: request.method,
    path: request.path,
    headers,
    body: request.body,
    receivedAt: request.receivedAt,
    deliveryId: crypto.randomUUID()
  }))
  const start = yield* Clock.currentTimeMillis
  yield* outbox.enqueue(payloads)
  yield* wakeDelivery
  const end = yield* Clock.currentTimeMillis
  yield* Metrics.enqueueSeconds.update((end - start) / 1000)
})

const respondTo = (
  outcome: RouteOutcome,
  request: WebhookRequest
): Effect.Effect<WebhookResponse, StoreUnavailable, GatewayContext> => {
  const d = outcome.decision
  switch (d._tag) {
    case "Respond":
      return Effect.succeed({ status: d.status, headers: d.headers, body: d.body })
    case "Control":
      return Effect.flatMap(ControlHandler, (h) => h.handle(request))
    case "Forward":
      return forward(request, d.regions, d.mode)
    case "Enqueue":
      return Effect.as(enqueue(request, d.provider, d.integrationId, d.targets), {
        status: 202,
        headers: {},
        body: EMPTY
      })
  }
}

/**
 * Routes one webhook and carries the decision out. Never fails: a region missing from the directory is 500
 * `region_not_found`, a store that cannot be read or written is 503 `store_unavailable` with `Retry-After: 5`
 * (logged once per interval by `StoreOutage`). Logs one line per webhook (provider, decision, regions, mailboxes,
 * status, latency; its message is the provider's event when it has one, e.g. `jira_server.no_integration`, else
 * `webhook`) and counts it.
 *
 * @since 0.1.0
 * @category routing
 */
export const handleWebhook = (request: WebhookRequest): Effect.Effect<WebhookResponse, never, GatewayContext> =>
  Effect.gen(function*() {
    const routed = yield* Effect.either(routeWebhook(request))
    let outcome: RouteOutcome | undefined
    let response: WebhookResponse
    const failure = routed._tag === "Left" ? routed.left : undefined
    if (routed._tag === "Left") {
      response = failureResponse(routed.left)
    } else {
      outcome = routed.right
      const answered = yield* Effect.either(respondTo(outcome, request))
      response = answered._tag === "Right" ? answered.right : failureResponse(answered.left)
      if (answered._tag === "Left") yield* StoreOutage.report(answered.left)
    }
    // an outage is logged once per interval with a count (StoreOutage), never once per request
    if (failure?._tag === "StoreUnavailable") yield* StoreOutage.report(failure)
    const registry = yield* ProviderRegistry
    // a bounded label (a known provider, `control` or `unknown`), never the raw path segment
    const provider = Metrics.providerLabel(outcome?.provider, registry)
    const kind = outcome === undefined ? "error" : outcome.decision._tag.toLowerCase()
    yield* Metrics.decisionsTotal.update(1, provider, kind)
    yield* Metrics.requestsTotal.update(1, provider, String(response.status))
    const now = yield* Clock.currentTimeMillis
    // the fields are a second message part, not annotations: annotating would update the fiber's log context
    const fields = {
      provider,
      decision: kind,
      reason: outcome?.reason ?? (routed._tag === "Left" ? routed.left._tag : ""),
      path: redactPath(request.path, registry),
      status: response.status,
      regions: outcome?.regions ?? [],
      mailboxes: outcome?.decision._tag === "Enqueue" ? outcome.decision.targets.map((t) => t.mailbox) : [],
      integration_id: outcome?.integration?.id ?? null,
      latency_ms: now - request.receivedAt
    }
    const event = outcome?.event
    // the provider's fields as a further message part: spreading them into `fields` measured ~15 % slower
    yield* event === undefined ? Effect.logInfo("webhook", fields) : Effect.logInfo(event.message, fields, event.fields)
    return response
  })

const failureResponse = (error: RegionNotFound | StoreUnavailable): WebhookResponse =>
  error._tag === "RegionNotFound"
    ? errorResponse(500, "region_not_found", error.message)
    : errorResponse(503, "store_unavailable", "the store is unavailable; retry later", {
      "retry-after": "5"
    })

/**
 * The control side when no upstream is configured: 404 `not_found`.
 *
 * @since 0.1.0
 * @category layers
 */
export const controlNotFound: ControlHandler["Type"] = ControlHandler.of({
  handle: (request) =>
    Effect.succeed(
      errorResponse(
        404,
        "not_found",
        `no route for ${request.method} ${request.path.split("?")[0]} (no control upstream)`
      )
    )
})
