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
import type { Fiber, Scope } from "effect"
import { Cause, Data, Effect, Exit, Runtime } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
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

/**
 * A server that listens but answers nothing yet: connections are accepted and their requests held (`/healthz`
 * included) until `open`, which handles them in arrival order and then every later request.
 *
 * @since 0.2.0
 * @category models
 */
export interface BoundServer extends RunningServer {
  /** Starts answering, on the services of the calling fiber. */
  readonly open: Effect.Effect<void, never, GatewayContext | StoreHealth>
}

const EMPTY = new Uint8Array(0)

/** The provider label of a path for requests answered before routing (413): bounded (a known provider, `control`
 * or `unknown`), by core's one label function. */
const providerLabel = Metrics.pathLabel

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
  // a repeated header (several `Set-Cookie`) is an array: node:http writes each value as a header of its own
  const headers = { ...response.headers } as Record<string, string | Array<string>>
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

/** The request target of an origin-form request (`/path?query`); `*` and absolute / authority forms are not. */
const isOriginForm = (target: string): boolean => target.charCodeAt(0) === 47 /* "/" */

/**
 * Binds the gateway's HTTP server in the current scope without answering anything (see `BoundServer`): a process
 * that cannot listen fails here, before it changes anything; `open` starts answering. Closing the scope shuts it down
 * gracefully (stops accepting, lets in-flight requests finish, then closes connections; requests still held because
 * it never opened are cut at once).
 *
 * Routes: `GET /healthz` → 200 `ok`; `GET /readyz` → `StoreHealth.check` (200 `ready` / 503); `GET /metrics` →
 * Prometheus text; everything else → `handleWebhook`. A request target that is not a path (`OPTIONS *`,
 * `GET http://host/…`) → 400 `bad_request`. Bodies larger than `maxBodyBytes` → 413 JSON, checked on
 * `content-length` first (before `100 Continue` is sent to an `Expect: 100-continue` request) and counted while
 * reading.
 *
 * @since 0.2.0
 * @category constructors
 */
export const bind = (options: ServerOptions): Effect.Effect<BoundServer, ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    // set by `open`; no request reaches `handler` before
    let runFork!: <A, E>(effect: Effect.Effect<A, E, GatewayContext | StoreHealth>) => Fiber.RuntimeFiber<A, E>
    let health!: StoreHealth["Type"]
    let opened = false
    const held: Array<{
      readonly req: Http.IncomingMessage
      readonly res: Http.ServerResponse
      readonly receivedAt: number
      readonly expectsContinue: boolean
    }> = []
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
      runFork(Effect.flatMap(providerLabel(path), (label) => Metrics.requestsTotal.update(1, label, "413")))
      return errorResponse(413, "payload_too_large", `the body is larger than ${options.maxBodyBytes} bytes`)
    }

    const badTarget = (res: Http.ServerResponse) => {
      runFork(Metrics.requestsTotal.update(1, "unknown", "400"))
      send(res, errorResponse(400, "bad_request", "the request target is not a path"), true)
    }

    const handler = (
      req: Http.IncomingMessage,
      res: Http.ServerResponse,
      receivedAt: number,
      expectsContinue: boolean
    ) => {
      const method = req.method ?? "GET"
      const path = req.url ?? "/"
      if (!isOriginForm(path)) {
        badTarget(res)
        req.resume()
        return
      }
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
      // `Expect: 100-continue` ('checkContinue'): the sender waits for this before it sends the body
      if (expectsContinue) res.writeContinue()
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

    const admit = (expectsContinue: boolean) => (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      const receivedAt = Date.now()
      inFlight++
      res.once("close", done)
      if (opened) handler(req, res, receivedAt, expectsContinue)
      else held.push({ req, res, receivedAt, expectsContinue })
    }

    const server = Http.createServer({
      requestTimeout: options.readTimeoutMs,
      headersTimeout: Math.min(options.readTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(options.readTimeoutMs / 2))),
      keepAliveTimeout: 5_000
    }, admit(false))
    // with a 'checkContinue' listener node:http leaves `100 Continue` to the handler (after the size check)
    server.on("checkContinue", admit(true))
    // CONNECT (an authority-form target) is not a path: answered 400 like `*` and absolute-form targets, never a
    // silently dropped connection
    server.on("connect", (_req: Http.IncomingMessage, socket: Duplex) => {
      const body = JSON.stringify({ error: "bad_request", message: "the request target is not a path" })
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${
          Buffer.byteLength(body)
        }\r\nconnection: close\r\n\r\n${body}`
      )
    })

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
          // never opened (the start failed): what was held gets no answer
          for (const h of held.splice(0)) h.req.socket.destroy()
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
    const open = Effect.gen(function*() {
      if (opened) return
      runFork = Runtime.runFork(yield* Effect.runtime<GatewayContext | StoreHealth>())
      health = yield* StoreHealth
      opened = true
      for (const h of held.splice(0)) {
        if (!h.res.destroyed) handler(h.req, h.res, h.receivedAt, h.expectsContinue)
      }
    })

    const address = server.address() as AddressInfo
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address
    return {
      host: address.address,
      port: address.port,
      url: `http://${host}:${address.port}`,
      server,
      inFlight: () => inFlight,
      open
    }
  })

/**
 * `bind`, then `open` at once: the gateway's HTTP server, answering on the current services.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  options: ServerOptions
): Effect.Effect<RunningServer, ListenError, Scope.Scope | GatewayContext | StoreHealth> =>
  Effect.flatMap(bind(options), ({ open, ...running }) => Effect.as(open, running))
