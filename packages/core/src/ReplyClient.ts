/**
 * Replies to a hybrid's reply target (docs/routing.md#deadline-aware-hybrid): what is sent where (`replyRequest`, pure) and the client
 * that sends it (`ReplyClient`, a reference: by default the `RegionClient` the delivery worker already has, so
 * `Delivery.layer` needs nothing more; tests swap it).
 *
 * @since 0.2.0
 */
import type { Effect } from "effect"
import { Context, Redacted } from "effect"
import type { ReplyTarget } from "./Domain.js"
import type { RegionTransportError } from "./Errors.js"
import type { RegionResponse } from "./RegionClient.js"

/**
 * Discord's API base when a target does not name one (`providers.discord.apiBaseUrl`'s default).
 *
 * @since 0.2.0
 * @category constants
 */
export const DISCORD_API_BASE_URL = "https://discord.com/api/v10"

/**
 * At most this many sends of one reply, in all (the first and two retries).
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_SENDS = 3

/**
 * One reply: an absolute http(s) URL (for Discord it holds the interaction token: never log it).
 *
 * @since 0.2.0
 * @category models
 */
export interface ReplyRequest {
  readonly method: "POST" | "PATCH"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * Sends replies. `send` undefined (the default): through the delivery worker's `RegionClient`.
 *
 * @since 0.2.0
 * @category tags
 */
export class ReplyClient extends Context.Reference<ReplyClient>()("@cellgate/core/ReplyClient", {
  defaultValue: (): {
    readonly send:
      | ((request: ReplyRequest, timeoutMs: number) => Effect.Effect<RegionResponse, RegionTransportError>)
      | undefined
  } => ({ send: undefined })
}) {}

const decoder = new TextDecoder()

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * What a region's answer becomes at the target. Slack: a POST of the region's JSON to `response_url` as it is, or
 * `{"text": <body>}` when the answer is not JSON. Discord: a PATCH of the `data` object of the region's JSON answer to
 * `<apiBaseUrl>/webhooks/<application_id>/<token>/messages/@original` (the whole JSON object when it has no `data`;
 * `{"content": <body>}` when the answer is not JSON).
 *
 * @since 0.2.0
 * @category constructors
 */
export const replyRequest = (target: ReplyTarget, answerBody: Uint8Array): ReplyRequest => {
  const text = decoder.decode(answerBody)
  const json = parseJson(text)
  const headers = { "content-type": "application/json" }
  if (target.kind === "slack") {
    return { method: "POST", url: target.url, headers, body: json === undefined ? JSON.stringify({ text }) : text }
  }
  const base = (target.apiBaseUrl ?? DISCORD_API_BASE_URL).replace(/\/+$/, "")
  const url = `${base}/webhooks/${encodeURIComponent(target.applicationId)}/${
    encodeURIComponent(Redacted.value(target.token))
  }/messages/@original`
  const body = isObject(json)
    ? JSON.stringify(isObject(json.data) ? json.data : json)
    : JSON.stringify({ content: text })
  return { method: "PATCH", url, headers, body }
}

/**
 * The URL split as the `RegionClient` takes it (origin as the region's URL, path with query), or `undefined` when it
 * is not an http(s) URL.
 *
 * @since 0.2.0
 * @category utils
 */
export const splitUrl = (url: string): { readonly origin: string; readonly path: string } | undefined => {
  const m = /^(https?:\/\/[^/?#\s]+)([^#\s]*)/i.exec(url)
  if (m === null) return undefined
  const path = m[2] === undefined || m[2] === "" ? "/" : m[2].startsWith("/") ? m[2] : `/${m[2]}`
  return { origin: m[1]!, path }
}

/**
 * The host of a reply URL for logs (never its path: a Discord path holds the token).
 *
 * @since 0.2.0
 * @category utils
 */
export const hostOf = (url: string): string => splitUrl(url)?.origin ?? "(not an http(s) URL)"
