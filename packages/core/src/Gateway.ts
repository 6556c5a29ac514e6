/**
 * The routing program as a service: `Gateway.Gateway` (`handle`, `route`), built by `Gateway.layer` from the ports,
 * which it looks up once, when the layer is built — never per request.
 *
 * `route` is the decision (classify → provider → `RouteOutcome`, with no side effect but reads and the volume
 * counter); `handle` carries the decision out through the outbox, the region client and the control side, and
 * answers. An HTTP adapter only converts requests and responses (`cellgate serve`, `WebhookApp.make()`).
 *
 * @since 0.2.0
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import * as ControlHandler from "./ControlHandler.js"
import type { EnqueueTarget, Region, RouteOutcome, WebhookRequest, WebhookResponse } from "./Domain.js"
import { control } from "./Domain.js"
import type { RegionNotFound, RegionTransportError, StoreUnavailable } from "./Errors.js"
import { forwardableHeaders, outgoingHeaders } from "./Forwarding.js"
import { GatewaySettings } from "./GatewaySettings.js"
import { IdGenerator } from "./IdGenerator.js"
import type { IntegrationId, RegionName } from "./Ids.js"
import { IntegrationRepo } from "./IntegrationRepo.js"
import * as Hybrid from "./internal/hybrid.js"
import * as Metrics from "./Metrics.js"
import { OrgRepo } from "./OrgRepo.js"
import type { NewPayload } from "./Outbox.js"
import { Outbox } from "./Outbox.js"
import type { Ports } from "./Provider.js"
import { classify, ProviderSecrets } from "./Provider.js"
import { ProviderRegistry } from "./ProviderRegistry.js"
import { makeWarnUnverified } from "./providers/Common.js"
import * as Redaction from "./Redaction.js"
import type { RegionResponse } from "./RegionClient.js"
import { RegionClient } from "./RegionClient.js"
import { RegionDirectory } from "./RegionDirectory.js"
import { errorResponse, relay } from "./Responses.js"
import * as ShedRules from "./ShedRules.js"
import * as StoreOutage from "./StoreOutage.js"
import * as Tracing from "./Tracing.js"
import { VolumeGate } from "./VolumeGate.js"

/**
 * The routing program.
 *
 * @since 0.2.0
 * @category tags
 */
export class Gateway extends Context.Tag("@cellgate/core/Gateway")<Gateway, {
  /**
   * Routes one webhook and carries the decision out. Never fails: a region missing from the directory is 500
   * `region_not_found`, a store that cannot be read or written is 503 `store_unavailable` with `Retry-After: 5`
   * (logged once per interval by `StoreOutage`). Logs one line per webhook (provider, decision, regions, mailboxes,
   * status, latency; its message is the provider's event when it has one, e.g. `jira_server.no_integration`, else
   * `webhook`) and counts it.
   */
  readonly handle: (request: WebhookRequest) => Effect.Effect<WebhookResponse>
  /**
   * The decision and what it was made from, with no side effect but reads and the volume counter (`explain`
   * routes through a gate that counts nothing, `VolumeGate.layerNoop`).
   */
  readonly route: (request: WebhookRequest) => Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable>
}>() {}

/**
 * The ports `Gateway.layer` requires. `ControlHandler` is optional (404 without one); `GatewaySettings`,
 * `ProviderSecrets` and `IdGenerator` are references with defaults.
 *
 * @since 0.2.0
 * @category models
 */
export type Requirements =
  | ProviderRegistry
  | IntegrationRepo
  | OrgRepo
  | RegionDirectory
  | VolumeGate
  | Outbox
  | RegionClient

const EMPTY = new Uint8Array(0)

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

const transportResponse = (error: RegionTransportError): WebhookResponse =>
  error.kind === "timeout"
    ? errorResponse(504, "region_timeout", error.message)
    : errorResponse(502, "region_unreachable", error.message)

const failureResponse = (error: RegionNotFound | StoreUnavailable): WebhookResponse =>
  error._tag === "RegionNotFound"
    ? errorResponse(500, "region_not_found", error.message)
    : errorResponse(503, "store_unavailable", "the store is unavailable; retry later", {
      "retry-after": "5"
    })

const accepted: WebhookResponse = { status: 202, headers: {}, body: EMPTY }

/**
 * Builds the service from the ports, each looked up once here: the returned `handle` and `route` need nothing from
 * the context of the request that runs them.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<Gateway["Type"], never, Requirements> = Effect.gen(function*() {
  const registry = yield* ProviderRegistry
  const outbox = yield* Outbox
  const client = yield* RegionClient
  const directory = yield* RegionDirectory
  const controlSide = Option.getOrElse(
    yield* Effect.serviceOption(ControlHandler.ControlHandler),
    () => ControlHandler.notFound
  )
  const { maxAnswerBytes, requestTimeoutMs } = yield* GatewaySettings
  const ids = yield* IdGenerator
  // traces (Tracing.ts): one flag read here; off, the request path has no span and no work for them
  const tracing = yield* Tracing.Tracing
  // shed rules (docs/routing.md#shedding) come as a `Context.Reference` defaulting to none, not as a requirement: the
  // requirement type of `layer` is pinned, and the directory ports applications implement keep their shapes
  const shedding = yield* ShedRules.InForce
  const ports: Ports = {
    integrations: yield* IntegrationRepo,
    organizations: yield* OrgRepo,
    regions: directory,
    volumeGate: yield* VolumeGate,
    secrets: yield* ProviderSecrets,
    // once per provider for the life of this gateway (one per process in `cellgate serve`)
    warnUnverified: makeWarnUnverified()
  }

  const route = (request: WebhookRequest): Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable> => {
    const c = classify(request.path, registry)
    if (c._tag === "Provider") {
      return Effect.map(c.provider.route(request, c.match, ports), (o) => ShedRules.apply(o, shedding))
    }
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
  }

  // `options`: the hybrid's live attempt (its delivery id is the stored copy's; its timeout the budget)
  const forwardTo = Effect.fnUntraced(function*(
    region: Region,
    request: WebhookRequest,
    options?: { readonly deliveryId: string; readonly timeoutMs: number }
  ) {
    const now = yield* Clock.currentTimeMillis
    const headers = yield* outgoingHeaders(region, request.headers, request.body, {
      deliveryId: options?.deliveryId ?? (yield* ids.deliveryId),
      attempt: 1
    }, now)
    if (tracing.enabled) yield* Tracing.withTraceparent(headers)
    const answer = yield* client.send(
      region,
      { method: request.method, path: request.path, headers, body: request.body },
      { timeoutMs: options?.timeoutMs ?? requestTimeoutMs, maxAnswerBytes }
    )
    if (answer.truncated === true) {
      yield* Metrics.truncatedTotal.update(1, "relayed_answer")
      yield* Effect.logWarning("region answer over delivery.maxAnswerBytes: not relayed").pipe(
        Effect.annotateLogs({ region: region.name, max_answer_bytes: maxAnswerBytes })
      )
    }
    return answer
  })

  // docs/routing.md#synchronous-proxy: `first` relays the first region's answer; `all` sends to every region in parallel and relays the
  // first 2xx in region-name order, else the first answer in that order; all failing → 502 (504 if the first failure
  // in order is a timeout and nothing answered) — or, with `toControl` (docs/routing.md#jira-cloud-forward-fallback), the control side's answer
  const forward = Effect.fn("forward")(function*(
    request: WebhookRequest,
    names: ReadonlyArray<RegionName>,
    mode: "first" | "all",
    toControl: boolean
  ) {
    const unreachable = (response: WebhookResponse, reason: string) =>
      toControl
        ? Effect.zipRight(
          Effect.logWarning("forward failed: answered by the control side").pipe(
            Effect.annotateLogs({ reason, path: redactPath(request.path, registry) })
          ),
          controlSide.handle(request)
        )
        : Effect.succeed(response)
    const regions: Array<Region> = []
    for (const name of mode === "first" ? names.slice(0, 1) : names) {
      const region = yield* directory.byName(name)
      if (Option.isSome(region)) regions.push(region.value)
    }
    if (regions.length === 0) {
      return yield* unreachable(errorResponse(502, "region_unreachable", "no region to forward to"), "no region")
    }
    if (mode === "first") {
      const region = regions[0]!
      return yield* forwardTo(region, request).pipe(
        Effect.matchEffect({
          onFailure: (error) => unreachable(transportResponse(error), error.kind),
          onSuccess: (answer) => Effect.succeed(relay(region.name, answer))
        })
      )
    }
    const answers = yield* Effect.forEach(regions, (region) => Effect.either(forwardTo(region, request)), {
      concurrency: "unbounded"
    })
    let firstAnswer: WebhookResponse | undefined
    for (let i = 0; i < regions.length; i++) {
      const a = answers[i]!
      if (a._tag === "Left") continue
      const answer: RegionResponse = a.right
      const relayed = relay(regions[i]!.name, answer)
      if (answer.status >= 200 && answer.status < 300 && answer.truncated !== true) return relayed
      firstAnswer ??= relayed
    }
    if (firstAnswer !== undefined) return firstAnswer
    return yield* unreachable(errorResponse(502, "region_unreachable", "every region failed"), "every region failed")
  })

  // one payload per target, then 202 — only once the write is durable (the outbox wakes its own worker)
  const enqueue = Effect.fnUntraced(function*(
    request: WebhookRequest,
    provider: string,
    integrationId: IntegrationId | undefined,
    targets: ReadonlyArray<EnqueueTarget>
  ) {
    const headers = forwardableHeaders(request.headers)
    const payloads: Array<NewPayload> = []
    for (const t of targets) {
      payloads.push({
        mailbox: t.mailbox,
        provider,
        region: t.region,
        integrationId: integrationId ?? null,
        method: request.method,
        path: request.path,
        headers,
        body: request.body,
        receivedAt: request.receivedAt,
        deliveryId: yield* ids.deliveryId,
        tenant: t.tenant ?? null
      })
    }
    const start = yield* Clock.currentTimeMillis
    if (tracing.enabled) {
      // the ingest span's context goes with each payload: the delivery attempts join this webhook's trace
      const traceContext = Option.getOrNull(yield* Tracing.currentTraceparent)
      yield* outbox.enqueue(traceContext === null ? payloads : payloads.map((p) => ({ ...p, traceContext }))).pipe(
        Tracing.child("cellgate.commit", {
          mailbox: targets.map((t) => t.mailbox),
          region: targets.map((t) => t.region)
        })
      )
    } else yield* outbox.enqueue(payloads)
    const end = yield* Clock.currentTimeMillis
    yield* Metrics.enqueueSeconds.update((end - start) / 1000)
  })

  const hybrid = Hybrid.make({ outbox, directory, ids, forwardTo })

  const respondTo = (
    outcome: RouteOutcome,
    request: WebhookRequest
  ): Effect.Effect<WebhookResponse, StoreUnavailable> => {
    const d = outcome.decision
    switch (d._tag) {
      case "Respond":
        return Effect.succeed({ status: d.status, headers: d.headers, body: d.body })
      case "Control":
        return controlSide.handle(request)
      case "Forward":
        return forward(request, d.regions, d.mode, d.onTransportFailure === "control")
      case "Enqueue":
        return Effect.as(enqueue(request, d.provider, d.integrationId, d.targets), accepted)
      case "Hybrid":
        return hybrid(request, d)
    }
  }

  const handle = (request: WebhookRequest): Effect.Effect<WebhookResponse> =>
    Effect.gen(function*() {
      const routed = yield* Effect.either(
        tracing.enabled ? Tracing.child("cellgate.route")(route(request)) : route(request)
      )
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
      // a bounded label (a known provider, `control` or `unknown`), never the raw path segment
      const provider = Metrics.providerLabel(outcome?.provider, registry)
      const kind = outcome === undefined ? "error" : outcome.decision._tag.toLowerCase()
      yield* Metrics.decisionsTotal.update(1, provider, kind)
      if (outcome !== undefined && ShedRules.isShed(outcome)) yield* Metrics.shedTotal.update(1, provider)
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
      if (tracing.enabled) {
        yield* Tracing.annotate({
          provider,
          decision: kind,
          status: response.status,
          "http.request.method": request.method,
          "url.path": fields.path,
          region: fields.regions,
          mailbox: fields.mailboxes
        })
      }
      const event = outcome?.event
      // the provider's fields as a further message part: spreading them into `fields` measured ~15 % slower
      yield* event === undefined ?
        Effect.logInfo("webhook", fields) :
        Effect.logInfo(event.message, fields, event.fields)
      return response
    })

  return Gateway.of({
    handle: tracing.enabled ? (request) => Tracing.webhook(tracing, handle(request)) : handle,
    route
  })
})

/**
 * The gateway over the ports in the context. The control side answers 404 unless a `ControlHandler` is provided.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<Gateway, never, Requirements> = Layer.effect(Gateway, make)
