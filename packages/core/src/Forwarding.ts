/**
 * What cellgate sends to a region: the header rules of docs/routing.md#durable-delivery and the `x-cellgate-*` headers of
 * docs/interfaces.md, signed with the Standard Webhooks scheme when the region has a secret; and `verifyForwarded`, for
 * the region's side.
 *
 * @since 0.1.0
 */
import { Effect, Either, Encoding, Redacted } from "effect"
import type { Region } from "./Domain.js"
import * as Metrics from "./Metrics.js"

/**
 * The hop-by-hop headers (RFC 9110 §7.6.1, plus `host` and the legacy `keep-alive` / `proxy-connection`): never sent
 * on, never relayed; every header named in `Connection` is hop-by-hop too. The one list of cellgate: the region
 * client, the relayed answers and the control proxy all use it.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
  "host"
])

/** Not forwarded to a region besides the hop-by-hop headers (docs/routing.md#durable-delivery). */
const NOT_FORWARDED = new Set(["content-length", "content-encoding", "x-forwarded-proto"])

/**
 * Headers as a map of lower-cased names to one value or, for a repeated header (several `Set-Cookie`), its values in
 * order.
 *
 * @since 0.1.0
 * @category models
 */
export type HeaderValues = Readonly<Record<string, string | ReadonlyArray<string>>>

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
const connectionListed = (headers: HeaderValues): Set<string> | undefined => {
  let listed: Set<string> | undefined
  for (const key in headers) {
    if (key.toLowerCase() !== "connection") continue
    const v = headers[key]!
    for (const line of typeof v === "string" ? [v] : v) {
      for (const token of line.split(",")) {
        const t = token.trim().toLowerCase()
        if (t !== "") (listed ??= new Set()).add(t)
      }
    }
  }
  return listed
}

/**
 * The headers without the hop-by-hop ones (`HOP_BY_HOP` and those named in `Connection`), lower-cased; repeated
 * values stay separate.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const withoutHopByHop: {
  (headers: Readonly<Record<string, string>>): Record<string, string>
  (headers: HeaderValues): Record<string, string | ReadonlyArray<string>>
} = (headers: HeaderValues): Record<string, any> => endToEnd(headers, undefined, false)

const endToEnd = (
  headers: HeaderValues,
  extra: ReadonlySet<string> | undefined,
  dropCellgate: boolean
): Record<string, string | ReadonlyArray<string>> => {
  const out: Record<string, string | ReadonlyArray<string>> = {}
  const listed = connectionListed(headers)
  for (const key in headers) {
    const k = key.toLowerCase()
    if (HOP_BY_HOP.has(k) || extra?.has(k) || listed?.has(k) || (dropCellgate && k.startsWith("x-cellgate-"))) {
      continue
    }
    out[k] = headers[key]!
  }
  return out
}

/**
 * The headers of an incoming request that may be forwarded: all but `host`, `content-length`, `content-encoding`,
 * `x-forwarded-proto`, the hop-by-hop headers (`HOP_BY_HOP`, and those named in `Connection`) and any `x-cellgate-*`
 * header.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const forwardableHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> =>
  endToEnd(headers, NOT_FORWARDED, true) as Record<string, string>

const NOT_RELAYED = new Set(["content-length"])

/**
 * The headers of a region's answer that are relayed: all but the hop-by-hop ones and `content-length` (the gateway
 * sets its own); repeated headers (several `Set-Cookie`) stay separate.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const relayableHeaders: {
  (headers: Readonly<Record<string, string>>): Record<string, string>
  (headers: HeaderValues): Record<string, string | ReadonlyArray<string>>
} = (headers: HeaderValues): Record<string, any> => endToEnd(headers, NOT_RELAYED, false)

/**
 * At most this many of the sender's headers go on the hop to a region (cellgate's own `x-cellgate-*` come first and
 * are not counted): a region's own header limit must never push out `host` or cellgate's headers.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const MAX_SENDER_HEADERS = 100

const encoder = new TextEncoder()

// the secret was checked when the configuration was decoded (`RegionSecret`, with the same decoder)
const secretKey = (secret: string): Uint8Array =>
  Either.getOrThrow(Encoding.decodeBase64(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret))

const signedContent = (deliveryId: string, timestamp: string, body: Uint8Array): Uint8Array => {
  const prefix = encoder.encode(`${deliveryId}.${timestamp}.`)
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix, 0)
  out.set(body, prefix.length)
  return out
}

const hmac = (key: Uint8Array, data: Uint8Array) =>
  Effect.promise(async () => {
    const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, data))
  })

/**
 * `v1,<base64>`: HMAC-SHA256 over `<delivery-id>.<timestamp>.<body>` with key = base64-decode(secret without
 * `whsec_`).
 *
 * @since 0.1.0
 * @category forwarding
 */
export const sign = (secret: string, deliveryId: string, timestamp: number, body: Uint8Array) =>
  hmac(secretKey(secret), signedContent(deliveryId, String(timestamp), body)).pipe(
    Effect.map((mac) => `v1,${Encoding.encodeBase64(mac)}`)
  )

/**
 * @since 0.1.0
 * @category models
 */
export interface CellgateHeaders {
  readonly deliveryId: string
  readonly attempt: number
  readonly mailbox?: string
  /**
   * The payload's number in its mailbox (`StoredPayload.sequence`): `x-cellgate-sequence` on every stored delivery
   * attempt (docs/routing.md#fair-adaptive-delivery); the gateway's synchronous forwards have none.
   *
   * @since 0.3.0
   */
  readonly sequence?: number
}

/**
 * The headers of a request to `region`: first cellgate's own `x-cellgate-delivery-id`, `x-cellgate-attempt`,
 * `x-cellgate-mailbox` and `x-cellgate-sequence` (deliveries) and, when the region has a secret, `x-cellgate-timestamp` and
 * `x-cellgate-signature`; then the forwardable headers of the original, at most `MAX_SENDER_HEADERS` of them (the
 * rest are dropped, counted in `cellgate_truncated_total{kind="hop_headers"}` and logged). `nowMs` comes from the
 * caller's `Clock`.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const outgoingHeaders = Effect.fnUntraced(function*(
  region: Region,
  original: Readonly<Record<string, string>>,
  body: Uint8Array,
  meta: CellgateHeaders,
  nowMs: number
) {
  const headers: Record<string, string> = {}
  headers["x-cellgate-delivery-id"] = meta.deliveryId
  headers["x-cellgate-attempt"] = String(meta.attempt)
  if (meta.mailbox !== undefined) headers["x-cellgate-mailbox"] = meta.mailbox
  if (meta.sequence !== undefined) headers["x-cellgate-sequence"] = String(meta.sequence)
  if (region.secret !== undefined) {
    const timestamp = Math.floor(nowMs / 1000)
    headers["x-cellgate-timestamp"] = String(timestamp)
    headers["x-cellgate-signature"] = yield* sign(Redacted.value(region.secret), meta.deliveryId, timestamp, body)
  }
  const sender = forwardableHeaders(original)
  let kept = 0
  let dropped = 0
  for (const k in sender) {
    if (kept < MAX_SENDER_HEADERS) {
      headers[k] = sender[k]!
      kept++
    } else dropped++
  }
  if (dropped > 0) {
    yield* Metrics.truncatedTotal.update(dropped, "hop_headers")
    yield* Effect.logWarning("sender headers dropped on the hop").pipe(
      Effect.annotateLogs({ region: region.name, kept, dropped })
    )
  }
  return headers
})

const timingSafeEqual = (a: string, b: string): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}

/**
 * The answer of `verifyForwarded`.
 *
 * @since 0.1.0
 * @category models
 */
export type VerifyResult =
  | { readonly ok: true; readonly deliveryId: string; readonly timestamp: number }
  | { readonly ok: false; readonly reason: "missing_headers" | "timestamp_out_of_tolerance" | "bad_signature" }

/**
 * For a region: checks that a request came from cellgate. `headers` are looked up case-insensitively; `body` is the
 * exact bytes received; `secret` is the region's `whsec_…` secret. Accepts any of several space-separated `v1,`
 * signatures (key rotation), as Standard Webhooks does.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const verifyForwarded = async (
  request: {
    readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
    readonly body: Uint8Array
  },
  secret: string,
  options: { readonly toleranceSeconds?: number; readonly nowSeconds?: number } = {}
): Promise<VerifyResult> => {
  const header = (name: string): string | undefined => {
    for (const key in request.headers) {
      if (key.toLowerCase() === name) {
        const v = request.headers[key]
        return typeof v === "string" ? v : v?.[0]
      }
    }
    return undefined
  }
  // one scheme or the other, never a mix: a provider's own `webhook-*` headers pass through to the region
  const prefix = header("x-cellgate-signature") !== undefined ? "x-cellgate-" : "webhook-"
  const deliveryId = header(prefix === "webhook-" ? "webhook-id" : "x-cellgate-delivery-id")
  const timestampText = header(`${prefix}timestamp`)
  const signatures = header(`${prefix}signature`)
  if (deliveryId === undefined || timestampText === undefined || signatures === undefined) {
    return { ok: false, reason: "missing_headers" }
  }
  const timestamp = Number(timestampText)
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000)
  if (!Number.isInteger(timestamp) || Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) {
    return { ok: false, reason: "timestamp_out_of_tolerance" }
  }
  const expected = await Effect.runPromise(sign(secret, deliveryId, timestamp, request.body))
  for (const candidate of signatures.split(" ")) {
    if (timingSafeEqual(candidate, expected)) return { ok: true, deliveryId, timestamp }
  }
  return { ok: false, reason: "bad_signature" }
}

/**
 * Constant-time equality of two strings (secrets from headers).
 *
 * @since 0.1.0
 * @category utils
 */
export const constantTimeEqual = timingSafeEqual
