/**
 * What cellgate sends to a region: the header rules of ROUTING.md §6 and the `x-cellgate-*` headers of
 * INTERFACES.md, signed with the Standard Webhooks scheme when the region has a secret; and `verifyForwarded`, for
 * the region's side.
 *
 * @since 0.1.0
 */
import { Effect, Redacted } from "effect"
import type { Region } from "./Domain.js"

const DROPPED = new Set([
  "host",
  "content-length",
  "content-encoding",
  "x-forwarded-proto",
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailers",
  "transfer-encoding",
  "upgrade"
])

/**
 * The headers of an incoming request that may be forwarded: all but `host`, `content-length`, `content-encoding`,
 * `x-forwarded-proto`, the hop-by-hop headers and any `x-cellgate-*` header.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const forwardableHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  const listed = connectionListed(headers)
  for (const key in headers) {
    const k = key.toLowerCase()
    if (DROPPED.has(k) || k.startsWith("x-cellgate-") || listed?.has(k)) continue
    out[k] = headers[key]!
  }
  return out
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
const connectionListed = (headers: Readonly<Record<string, string>>): Set<string> | undefined => {
  let listed: Set<string> | undefined
  for (const key in headers) {
    if (key.toLowerCase() !== "connection") continue
    for (const token of headers[key]!.split(",")) {
      const t = token.trim().toLowerCase()
      if (t !== "") (listed ??= new Set()).add(t)
    }
  }
  return listed
}

/**
 * Hop-by-hop headers of a region's answer that are not relayed.
 *
 * @since 0.1.0
 * @category forwarding
 */
export const relayableHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  const listed = connectionListed(headers)
  for (const key in headers) {
    const k = key.toLowerCase()
    if (DROPPED.has(k) || listed?.has(k)) continue
    out[k] = headers[key]!
  }
  return out
}

const encoder = new TextEncoder()

const base64ToBytes = (b64: string): Uint8Array => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))

const bytesToBase64 = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!)
  return btoa(s)
}

const secretKey = (secret: string): Uint8Array =>
  base64ToBytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret)

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
    Effect.map((mac) => `v1,${bytesToBase64(mac)}`)
  )

/**
 * @since 0.1.0
 * @category models
 */
export interface CellgateHeaders {
  readonly deliveryId: string
  readonly attempt: number
  readonly mailbox?: string
}

/**
 * The headers of a request to `region`: the forwardable headers of the original, plus `x-cellgate-delivery-id`,
 * `x-cellgate-attempt`, `x-cellgate-mailbox` (deliveries) and, when the region has a secret,
 * `x-cellgate-timestamp` and `x-cellgate-signature`. `nowMs` comes from the caller's `Clock`.
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
  const headers = forwardableHeaders(original)
  headers["x-cellgate-delivery-id"] = meta.deliveryId
  headers["x-cellgate-attempt"] = String(meta.attempt)
  if (meta.mailbox !== undefined) headers["x-cellgate-mailbox"] = meta.mailbox
  if (region.secret !== undefined) {
    const timestamp = Math.floor(nowMs / 1000)
    headers["x-cellgate-timestamp"] = String(timestamp)
    headers["x-cellgate-signature"] = yield* sign(Redacted.value(region.secret), meta.deliveryId, timestamp, body)
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
