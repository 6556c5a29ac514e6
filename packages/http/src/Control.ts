/**
 * The control side: a reverse proxy to `control.upstream` when one is configured, else core's 404. The proxy is built
 * on cellgate's one HTTP client (`HttpExchange` of `@cellgate/adapters`, the region client's too) and its one
 * hop-by-hop list (`withoutHopByHop` / `relayableHeaders` of `@cellgate/core`).
 *
 * @since 0.1.0
 */
import * as HttpExchange from "@cellgate/adapters/HttpExchange"
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import {
  ControlHandler,
  errorResponse,
  GatewaySettings,
  Metrics,
  RegionClient,
  relayableHeaders,
  withoutHopByHop
} from "@cellgate/core"
import { Effect, Layer } from "effect"

/**
 * Options of the proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyOptions {
  /** No answer in time → 504 `upstream_timeout` (default 30 s). */
  readonly timeoutMs?: number
  /** The keep-alive pools to use (default: Node's global agents). */
  readonly agents?: HttpExchange.Agents
}

/**
 * Proxies the request to `upstream` (same method; the request path normalised and joined under the upstream's base
 * path, never above it, the query as given; headers minus hop-by-hop, those named in `Connection` included; body)
 * and relays its status, headers (repeated ones kept apart, hop-by-hop dropped) and body. A request target that is
 * not an origin-form path (`*`, `http://host/…`) or that would climb out of the base path → 400 `bad_request`;
 * unreachable → 502 `upstream_unreachable`; no answer in time → 504 `upstream_timeout`; an answer longer than
 * `GatewaySettings.maxAnswerBytes` (`delivery.maxAnswerBytes`) → 502 `answer_too_large`, the rest not read, counted
 * in `cellgate_truncated_total{kind="relayed_answer"}`. Never fails, never throws.
 *
 * @since 0.1.0
 * @category constructors
 */
export const proxy = (upstream: string, options: ProxyOptions = {}): ControlHandler.ControlHandler["Type"] => {
  const timeoutMs = options.timeoutMs ?? 30_000
  return ControlHandler.ControlHandler.of({
    handle: (request: WebhookRequest) =>
      Effect.flatMap(
        GatewaySettings.GatewaySettings,
        ({ maxAnswerBytes = RegionClient.DEFAULT_MAX_ANSWER_BYTES }) =>
          HttpExchange.exchange(options.agents, upstream, {
            method: request.method,
            path: request.path,
            headers: withoutHopByHop(request.headers),
            body: request.body,
            timeoutMs,
            maxAnswerBytes
          }).pipe(
            Effect.flatMap((answer): Effect.Effect<WebhookResponse> =>
              answer.truncated
                ? Effect.as(
                  Metrics.truncatedTotal.update(1, "relayed_answer").pipe(
                    Effect.zipRight(
                      Effect.logWarning("control upstream answer over delivery.maxAnswerBytes: not relayed").pipe(
                        Effect.annotateLogs({ max_answer_bytes: maxAnswerBytes })
                      )
                    )
                  ),
                  errorResponse(502, "answer_too_large", "the control upstream's answer is larger than allowed")
                )
                : Effect.succeed({
                  status: answer.status,
                  headers: relayableHeaders(answer.headers),
                  body: answer.body
                })
            ),
            Effect.catchAll((error) =>
              error.kind === "bad_target"
                ? Effect.succeed(
                  errorResponse(400, "bad_request", "the request target is not a path (origin-form) under the gateway")
                )
                : Effect.as(
                  Effect.logWarning("control upstream failed").pipe(Effect.annotateLogs({ detail: error.detail })),
                  error.kind === "timeout"
                    ? errorResponse(504, "upstream_timeout", `the control upstream did not answer: ${error.detail}`)
                    : errorResponse(502, "upstream_unreachable", `the control upstream is unreachable: ${error.detail}`)
                )
            )
          )
      )
  })
}

/**
 * `ControlHandler` from the `control` section: a proxy with its own keep-alive pools (closed with the layer) when
 * `upstream` is set, else 404 JSON.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  control: { readonly upstream?: string | undefined }
): Layer.Layer<ControlHandler.ControlHandler> => {
  const upstream = control.upstream
  return upstream === undefined
    ? Layer.succeed(ControlHandler.ControlHandler, ControlHandler.notFound)
    : Layer.scoped(
      ControlHandler.ControlHandler,
      Effect.map(HttpExchange.makeAgents(), (agents) => proxy(upstream, { agents }))
    )
}
