/**
 * The control side port: what cellgate answers for requests that are not routed to a region (setup and link
 * pages, unknown providers, paths outside `/extensions/`). `Gateway.layer` answers 404 unless one is provided;
 * `cellgate serve` provides a proxy to `control.upstream`.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"
import type { WebhookRequest, WebhookResponse } from "./Domain.js"
import { errorResponse } from "./Responses.js"

/**
 * What the control side answers for requests that are not routed to a region.
 *
 * @since 0.1.0
 * @category tags
 */
export class ControlHandler extends Context.Tag("@cellgate/core/ControlHandler")<ControlHandler, {
  readonly handle: (request: WebhookRequest) => Effect.Effect<WebhookResponse>
}>() {}

/**
 * The control side when no upstream is configured: 404 `not_found`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const notFound: ControlHandler["Type"] = ControlHandler.of({
  handle: (request) =>
    Effect.succeed(
      errorResponse(
        404,
        "not_found",
        `no route for ${request.method} ${request.path.split("?")[0]} (no control upstream)`
      )
    )
})

/**
 * `notFound` as a layer (what `Gateway.layer` uses when no `ControlHandler` is provided).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerNotFound: Layer.Layer<ControlHandler> = Layer.succeed(ControlHandler, notFound)
