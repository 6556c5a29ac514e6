// The gateway as the tests reach it: `Gateway.Gateway` built over the services a test composes.
import type { RouteOutcome, WebhookRequest, WebhookResponse } from "@cellgate/core"
import { Gateway } from "@cellgate/core"
import type { RegionNotFound, StoreUnavailable } from "@cellgate/core"
import { Effect, Layer } from "effect"

/** `Gateway.Gateway`'s `handle`, for a test that provides a layer with the gateway in it. */
export const handle = (request: WebhookRequest): Effect.Effect<WebhookResponse, never, Gateway.Gateway> =>
  Effect.flatMap(Gateway.Gateway, (gateway) => gateway.handle(request))

/** `Gateway.Gateway`'s `route`. */
export const route = (
  request: WebhookRequest
): Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable, Gateway.Gateway> =>
  Effect.flatMap(Gateway.Gateway, (gateway) => gateway.route(request))

/** `services` with `Gateway.layer` built over them (and the services kept in the output). */
export const withGateway = <ROut, E, RIn>(services: Layer.Layer<ROut, E, RIn>) =>
  Layer.provideMerge(Gateway.layer, services)
