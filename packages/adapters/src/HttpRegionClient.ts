/**
 * The `RegionClient` over cellgate's one HTTP client (`HttpExchange`) with keep-alive agents: sends the method,
 * `region.url` (with its base path) joined with the request's path (the path carries the query; the query goes as
 * given), `host` first, then cellgate's and the sender's headers, and the exact body bytes; never follows a redirect
 * (a 3xx is just an answer); reads the answer up to `maxAnswerBytes` (default 1 MiB; past it the socket is destroyed
 * and the answer is `truncated`); keeps repeated answer headers apart; the whole exchange (connect, send, answer,
 * body) is bounded by `timeoutMs` → `RegionTransportError` of kind `timeout`; refused, reset, DNS and TLS failures →
 * kind `connection`. A request is sent once: a reset on a reused keep-alive socket is a failed attempt (the region
 * may have read the request), and the retry is the caller's next attempt with its own number.
 *
 * Built on `node:http` directly rather than `@effect/platform`'s `HttpClient`: the client only needs one
 * request/response exchange of bytes, and going direct keeps the exact bytes (no body re-encoding), gives the Node
 * error codes for the typed errors, and lets the answer be cut at the cap without reading the rest.
 *
 * @since 0.1.0
 */
import { RegionClient, RegionTransportError } from "@cellgate/core"
import { Effect, Layer } from "effect"
import * as HttpExchange from "./HttpExchange.js"

/**
 * Options of the connection pools.
 *
 * @since 0.1.0
 * @category models
 */
export type Options = HttpExchange.AgentOptions

/**
 * A `RegionClient` over the given agents.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (agents: HttpExchange.Agents): RegionClient.RegionClient["Type"] =>
  RegionClient.RegionClient.of({
    send: (region, request, { maxAnswerBytes, timeoutMs }) =>
      HttpExchange.exchange(agents, region.url, {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
        timeoutMs,
        maxAnswerBytes: maxAnswerBytes ?? RegionClient.DEFAULT_MAX_ANSWER_BYTES
      }).pipe(
        Effect.map((answer): RegionClient.RegionResponse => answer),
        Effect.mapError((e) =>
          new RegionTransportError({
            region: region.name,
            kind: e.kind === "timeout" ? "timeout" : "connection",
            detail: e.detail
          })
        )
      )
  })

/**
 * Keep-alive agents for the life of the layer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAgents = (options: Options = {}) => HttpExchange.makeAgents(options)

/**
 * The region client with its own keep-alive pools, closed with the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<RegionClient.RegionClient> =>
  Layer.scoped(RegionClient.RegionClient, Effect.map(makeAgents(options), make))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<RegionClient.RegionClient> = layerWith({})
