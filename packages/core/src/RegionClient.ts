/**
 * The region client port: sends one request to a region (a delivery or a synchronous forward). The HTTP
 * implementation is `HttpRegionClient.layer` in `@cellgate/adapters`.
 *
 * @since 0.2.0
 */
import type { Effect } from "effect"
import { Context } from "effect"
import type { Region } from "./Domain.js"
import type { RegionTransportError } from "./Errors.js"

/**
 * A request cellgate sends to a region: the path (with query) is appended to the region's URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutgoingRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RegionResponse {
  readonly status: number
  /** Lower-cased; a repeated header (several `Set-Cookie`) is an array of its values in order. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string>>>
  /** The start of the answer: at most `maxAnswerBytes` when the client was given a cap. */
  readonly body: Uint8Array
  /** The answer was longer than `maxAnswerBytes`: `body` is its start only (the rest was not read). */
  readonly truncated?: boolean
}

/**
 * The default cap on a region's answer (1 MiB, `delivery.maxAnswerBytes`).
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_MAX_ANSWER_BYTES = 1_048_576

/**
 * @since 0.2.0
 * @category models
 */
export interface SendOptions {
  readonly timeoutMs: number
  /** Read at most this many bytes of the answer (the rest is not read: `truncated`). */
  readonly maxAnswerBytes?: number
}

/**
 * Sends one request to a region (delivery or synchronous forward). Redirects are not followed. Transport failures
 * (refused, reset, DNS, timeout after `timeoutMs`) are typed. A request is sent at most once: the region may have read
 * it, so a re-send is the caller's new attempt (its own `x-cellgate-attempt`), never the client's.
 *
 * @since 0.1.0
 * @category tags
 */
export class RegionClient extends Context.Tag("@cellgate/core/RegionClient")<RegionClient, {
  readonly send: (
    region: Region,
    request: OutgoingRequest,
    options: SendOptions
  ) => Effect.Effect<RegionResponse, RegionTransportError>
}>() {}
