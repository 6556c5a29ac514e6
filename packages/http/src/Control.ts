/**
 * The control side: a reverse proxy to `control.upstream` when one is configured, else core's 404.
 *
 * @since 0.1.0
 */
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import { ControlHandler, controlNotFound, errorResponse } from "@cellgate/core"
import { Effect, Layer } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length"
])

const withoutHopByHop = (headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>) => {
  const out: Record<string, string> = {}
  for (const key in headers) {
    const k = key.toLowerCase()
    const v = headers[key]
    if (HOP_BY_HOP.has(k) || v === undefined) continue
    out[k] = typeof v === "string" ? v : v.join(", ")
  }
  return out
}

/**
 * One plain HTTP(S) exchange (no redirects followed), the body read whole.
 *
 * @since 0.1.0
 * @category utils
 */
export const exchange = (
  url: URL,
  request: {
    readonly method: string
    readonly headers: Readonly<Record<string, string>>
    readonly body: Uint8Array
    readonly timeoutMs: number
  }
): Effect.Effect<
  { status: number; headers: Record<string, string>; body: Uint8Array },
  { readonly kind: "timeout" | "connection"; readonly detail: string }
> =>
  Effect.async((resume, signal) => {
    const mod = url.protocol === "https:" ? Https : Http
    let done = false
    const finish = (r: Effect.Effect<any, any>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(r)
    }
    const req = mod.request(url, {
      method: request.method,
      headers: { ...request.headers, "content-length": String(request.body.length) },
      signal
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () =>
        finish(Effect.succeed({
          status: res.statusCode ?? 502,
          headers: withoutHopByHop(res.headers as Record<string, string | Array<string> | undefined>),
          body: new Uint8Array(Buffer.concat(chunks))
        })))
      res.on("error", (e) => finish(Effect.fail({ kind: "connection", detail: e.message })))
    })
    const timer = setTimeout(() => {
      finish(Effect.fail({ kind: "timeout", detail: `no answer within ${request.timeoutMs} ms` }))
      req.destroy()
    }, request.timeoutMs)
    req.on("error", (e) => finish(Effect.fail({ kind: "connection", detail: e.message })))
    req.end(request.body)
  })

/**
 * Proxies the request to `upstream` (same method, path with query, headers minus hop-by-hop, body) and relays its
 * status, headers and body. Unreachable → 502 `upstream_unreachable`; no answer in time → 504.
 *
 * @since 0.1.0
 * @category constructors
 */
export const proxy = (upstream: string, options: { readonly timeoutMs?: number } = {}): ControlHandler["Type"] => {
  const base = upstream.endsWith("/") ? upstream.slice(0, -1) : upstream
  const timeoutMs = options.timeoutMs ?? 30_000
  return ControlHandler.of({
    handle: (request: WebhookRequest) =>
      exchange(new URL(base + request.path), {
        method: request.method,
        headers: withoutHopByHop(request.headers),
        body: request.body,
        timeoutMs
      }).pipe(
        Effect.map((answer): WebhookResponse => answer),
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logWarning("control upstream failed").pipe(Effect.annotateLogs({ detail: error.detail })),
            error.kind === "timeout"
              ? errorResponse(504, "upstream_timeout", `the control upstream did not answer: ${error.detail}`)
              : errorResponse(502, "upstream_unreachable", `the control upstream is unreachable: ${error.detail}`)
          )
        )
      )
  })
}

/**
 * `ControlHandler` from the `control` section: a proxy when `upstream` is set, else 404 JSON.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (control: { readonly upstream?: string | undefined }): Layer.Layer<ControlHandler> =>
  Layer.succeed(ControlHandler, control.upstream === undefined ? controlNotFound : proxy(control.upstream))
