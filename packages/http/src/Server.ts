/**
 * The HTTP adapter: a plain `node:http` server whose handler turns each request into a `WebhookRequest` and runs
 * core's `handleWebhook` on one prebuilt runtime (captured once; no layer is built per request). Measured: the
 * `@effect/platform` `HttpRouter` + `NodeHttpServer` stack ran at ≈ 0.17× a bare `node:http` server for small
 * POSTs, `node:http` + one prebuilt runtime at ≈ 0.43× — see docs/gateway.md.
 *
 * @since 0.1.0
 */
import type { GatewayContext, WebhookRequest, WebhookResponse } from "@cellgate/core"
import { Delivery, errorResponse, handleWebhook, Metrics, StoreHealth } from "@cellgate/core"
import type { Scope } from "effect"
import { Cause, Data, Effect, Exit, Metric, Runtime } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Prometheus from "./Prometheus.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  readonly host: string
  readonly port: number
  readonly maxBodyBytes: number
  readonly readTimeoutMs: number
  /** How long shutdown waits for in-flight requests before cutting connections (default 10 s). */
  readonly shutdownGraceMs?: number
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningServer {
  readonly host: string
  readonly port: number
  /** `http://HOST:PORT` */
  readonly url: string
  readonly server: Http.Server
  /** Requests being handled right now. */
  readonly inFlight: () => number
}

/**
 * The server could not listen (port taken, bad host…).
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenError extends Data.TaggedError("ListenError")<{ readonly message: string }> {}

const EMPTY = new Uint8Array(0)

/** The provider label of a path for requests answered before routing (413). */
const providerLabel = (path: string): string => {
  if (!path.startsWith("/extensions/")) return "control"
  const rest = path.slice("/extensions/".length)
  const end = rest.search(/[/?]/)
  const segment = (end === -1 ? rest : rest.slice(0, end)).replaceAll("-", "_")
  return segment === "" ? "control" : segment
}

const ingressHeaders = (raw: Http.IncomingHttpHeaders): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const key in raw) {
    if (key.startsWith("x-cellgate-")) continue
    const v = raw[key]
    if (v === undefined) continue
    out[key] = typeof v === "string" ? v : v.join(", ")
  }
  return out
}

const send = (res: Http.ServerResponse, response: WebhookResponse, closing: boolean) => {
  if (res.headersSent || res.destroyed) return
  const headers: Record<string, string> = { ...response.headers }
  if (closing) headers.connection = "close"
  const body = response.body
  headers["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.length)
  res.writeHead(response.status, headers)
  res.end(typeof body === "string" ? body : body.length === 0 ? undefined : body)
}

const text = (status: number, body: string, contentType = "text/plain; charset=utf-8"): WebhookResponse => ({
  status,
  headers: { "content-type": contentType },
  body
})

/**
 * Starts the gateway's HTTP server in the current scope; closing the scope shuts it down gracefully (stops
 * accepting, lets in-flight requests finish, then closes connections).
 *
 * Routes: `GET /healthz` → 200 `ok`; `GET /readyz` → `StoreHealth.check` (200 `ready` / 503); `GET /metrics` →
 * Prometheus text; everything else → `handleWebhook`. Bodies larger than `maxBodyBytes` → 413 JSON, checked on
 * `content-length` first and counted while reading.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  options: ServerOptions
): Effect.Effect<RunningServer, ListenError, Scope.Scope | GatewayContext | StoreHealth> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<GatewayContext | StoreHealth>()
    const runFork = Runtime.runFork(runtime)
    const health = yield* StoreHealth
    let inFlight = 0
    let closing = false
    let onIdle: (() => void) | undefined

    const done = () => {
      inFlight--
      if (inFlight === 0 && onIdle !== undefined) onIdle()
    }

    const run = (
      effect: Effect.Effect<WebhookResponse, never, GatewayContext | StoreHealth>,
      res: Http.ServerResponse
    ) => {
      const fiber = runFork(effect)
      fiber.addObserver((exit) => {
        if (Exit.isSuccess(exit)) send(res, exit.value, closing)
        else {
          if (!Cause.isInterruptedOnly(exit.cause)) {
            runFork(Effect.logError("request failed", exit.cause))
          }
          send(res, errorResponse(500, "internal_error", "the gateway failed to handle the request"), closing)
        }
      })
    }

    const tooLarge = (path: string) => {
      runFork(Metric.increment(Metrics.requestsTotal(providerLabel(path), "413")))
      return errorResponse(413, "payload_too_large", `the body is larger than ${options.maxBodyBytes} bytes`)
    }

    const handler = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      const receivedAt = Date.now()
      inFlight++
      res.once("close", done)
      const method = req.method ?? "GET"
      const path = req.url ?? "/"
      if (method === "GET" || method === "HEAD") {
        const bare = path.indexOf("?") === -1 ? path : path.slice(0, path.indexOf("?"))
        if (bare === "/healthz") {
          return send(res, text(200, "ok"), closing)
        }
        if (bare === "/readyz") {
          return run(
            Effect.match(health.check, {
              onFailure: () =>
                errorResponse(503, "store_unavailable", "the store is not ready", { "retry-after": "5" }),
              onSuccess: () => text(200, "ready")
            }),
            res
          )
        }
        if (bare === "/metrics") {
          return run(
            Delivery.updateOutboxGauges().pipe(
              Effect.catchAll(() => Effect.void),
              Effect.zipRight(Prometheus.render),
              Effect.map((body) => text(200, body, Prometheus.contentType))
            ),
            res
          )
        }
      }
      const declared = req.headers["content-length"]
      if (declared !== undefined && Number(declared) > options.maxBodyBytes) {
        send(res, tooLarge(path), true)
        req.resume()
        return
      }
      const chunks: Array<Buffer> = []
      let size = 0
      let rejected = false
      req.on("data", (chunk: Buffer) => {
        if (rejected) return
        size += chunk.length
        if (size > options.maxBodyBytes) {
          rejected = true
          chunks.length = 0
          send(res, tooLarge(path), true)
          return
        }
        chunks.push(chunk)
      })
      req.on("error", () => {
        rejected = true
      })
      req.on("end", () => {
        if (rejected) return
        const request: WebhookRequest = {
          method,
          path,
          headers: ingressHeaders(req.headers),
          body: chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
          receivedAt
        }
        run(handleWebhook(request), res)
      })
    }

    const server = Http.createServer({
      requestTimeout: options.readTimeoutMs,
      headersTimeout: Math.min(options.readTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(options.readTimeoutMs / 2))),
      keepAliveTimeout: 5_000
    }, handler)

    yield* Effect.acquireRelease(
      Effect.async<void, ListenError>((resume) => {
        const onError = (error: Error) => resume(Effect.fail(new ListenError({ message: error.message })))
        server.once("error", onError)
        server.listen(options.port, options.host, () => {
          server.off("error", onError)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          closing = true
          const grace = setTimeout(() => {
            server.closeAllConnections()
          }, options.shutdownGraceMs ?? 10_000)
          server.close(() => {
            clearTimeout(grace)
            resume(Effect.void)
          })
          const idle = () => server.closeIdleConnections()
          if (inFlight === 0) idle()
          else onIdle = idle
        })
    )
    const address = server.address() as AddressInfo
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address
    return {
      host: address.address,
      port: address.port,
      url: `http://${host}:${address.port}`,
      server,
      inFlight: () => inFlight
    }
  })
