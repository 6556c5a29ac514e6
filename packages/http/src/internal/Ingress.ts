/**
 * The conversions between HTTP and core's `WebhookRequest` / `WebhookResponse`, shared by the gateway's own server
 * (`Server.ts`) and the embeddable app (`WebhookApp.ts`), so both answer alike: the headers kept, the body limit
 * (declared length first, then counted while reading), the 400 / 413 answers and their metrics, the headers written.
 *
 * @internal
 */
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import { errorResponse, Metrics } from "@cellgate/core"
import { Effect } from "effect"
import type * as Http from "node:http"

/** The default body limit (`server.maxBodyBytes`, `WebhookApp.make`'s `maxBodyBytes`): 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576

/** @internal */
export const EMPTY = new Uint8Array(0)

/**
 * The request headers the gateway sees: every header but `x-cellgate-*` (the gateway's own, never taken from a
 * sender), a repeated header joined with `, ` as Node does.
 *
 * @internal
 */
export const ingressHeaders = (
  raw: Http.IncomingHttpHeaders | Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const key in raw) {
    if (key.startsWith("x-cellgate-")) continue
    const v = raw[key]
    if (v === undefined) continue
    out[key] = typeof v === "string" ? v : v.join(", ")
  }
  return out
}

/** The request target of an origin-form request (`/path?query`); `*` and absolute / authority forms are not. */
export const isOriginForm = (target: string): boolean => target.charCodeAt(0) === 47 /* "/" */

/** 400 for a request target that is not a path (counted under `provider="unknown"`). */
export const badTarget = (): Effect.Effect<WebhookResponse> =>
  Effect.as(
    Metrics.requestsTotal.update(1, "unknown", "400"),
    errorResponse(400, "bad_request", "the request target is not a path")
  )

const NO_PROVIDERS = { get: () => undefined }

/**
 * 413 for a body over `maxBodyBytes`, counted under the path's bounded provider label (core's
 * `Metrics.pathProviderLabel` with the registry given, `unknown` / `control` without one).
 */
export const tooLarge = (
  path: string,
  maxBodyBytes: number,
  registry: { readonly get: (name: string) => unknown } = NO_PROVIDERS
): Effect.Effect<WebhookResponse> =>
  Effect.as(
    Metrics.requestsTotal.update(1, Metrics.pathProviderLabel(path, registry), "413"),
    errorResponse(413, "payload_too_large", `the body is larger than ${maxBodyBytes} bytes`)
  )

/** Whether the declared `content-length` is already over the limit (checked before anything is read). */
export const declaredTooLarge = (contentLength: string | undefined, maxBodyBytes: number): boolean =>
  contentLength !== undefined && Number(contentLength) > maxBodyBytes

/**
 * Collects the chunks of a body up to `maxBodyBytes`: `push` returns `false` (and drops what it held) once the body
 * is over the limit.
 */
export class BodyCollector {
  private readonly chunks: Array<Uint8Array> = []
  private size = 0
  constructor(readonly maxBodyBytes: number) {}
  /** Whether the body went over the limit. */
  get tooLarge(): boolean {
    return this.size > this.maxBodyBytes
  }
  push(chunk: Uint8Array): boolean {
    this.size += chunk.length
    if (this.size > this.maxBodyBytes) {
      this.chunks.length = 0
      return false
    }
    this.chunks.push(chunk)
    return true
  }
  get body(): Uint8Array {
    const chunks = this.chunks
    return chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
  }
}

/**
 * Reads a node:http request body with the limit; `done` gets the body, `"too_large"` as soon as the limit is
 * passed (the rest is not kept), or `"aborted"` if the request errored (the connection is gone: nothing to answer).
 */
export const readBody = (
  req: Http.IncomingMessage,
  maxBodyBytes: number,
  done: (body: Uint8Array | "too_large" | "aborted") => void
): void => {
  const collector = new BodyCollector(maxBodyBytes)
  let finished = false
  req.on("data", (chunk: Buffer) => {
    if (finished) return
    if (!collector.push(chunk)) {
      finished = true
      done("too_large")
    }
  })
  req.on("error", () => {
    if (finished) return
    finished = true
    done("aborted")
  })
  req.on("end", () => {
    if (finished) return
    finished = true
    done(collector.body)
  })
}

/** The headers written for an answer: its own (a repeated one as an array), `content-length`, and `connection:
 * close` when the connection is to close after it. */
export const responseHeaders = (
  response: WebhookResponse,
  closing: boolean
): Record<string, string | Array<string>> => {
  // a repeated header (several `Set-Cookie`) is an array: node:http writes each value as a header of its own
  const headers = { ...response.headers } as Record<string, string | Array<string>>
  if (closing) headers.connection = "close"
  const body = response.body
  headers["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.length)
  return headers
}

/** A `WebhookRequest` from what was read. */
export const webhookRequest = (
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
  receivedAt: number
): WebhookRequest => ({ method, path, headers, body, receivedAt })
