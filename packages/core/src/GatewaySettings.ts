/**
 * The request path's settings, with their defaults: `defaults`, `layer(partial)`, and the `GatewaySettings`
 * reference that `Gateway.layer` reads once when it is built (the defaults when nothing is provided, so the
 * gateway's requirement type does not grow).
 *
 * @since 0.2.0
 */
import { Context, Layer } from "effect"
import { DEFAULT_MAX_ANSWER_BYTES } from "./RegionClient.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  /** Timeout of one synchronous forward to a region (`delivery.requestTimeoutMs`). */
  readonly requestTimeoutMs: number
  /** A relayed answer longer than this is 502 `answer_too_large` (`delivery.maxAnswerBytes`). */
  readonly maxAnswerBytes: number
}

/**
 * @since 0.2.0
 * @category defaults
 */
export const defaults: Settings = { requestTimeoutMs: 12_000, maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES }

/**
 * The settings in force (the defaults unless provided).
 *
 * @since 0.1.0
 * @category tags
 */
export class GatewaySettings extends Context.Reference<GatewaySettings>()("@cellgate/core/GatewaySettings", {
  defaultValue: (): Settings => defaults
}) {}

/**
 * The defaults with `settings` over them.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (settings: Partial<Settings> = {}): Layer.Layer<GatewaySettings> =>
  Layer.succeed(GatewaySettings, { ...defaults, ...settings })
