/**
 * The HTTP adapter: a plain `node:http` server whose handler turns each request into a `WebhookRequest` and runs
 * core's `Gateway.Gateway` `handle` on one prebuilt runtime (the service and the runtime captured once, by `open`;
 * no layer is built per request). The conversions are `internal/Ingress.ts`, shared with `WebhookApp`. Measured: the
 * `@effect/platform` `HttpRouter` + `NodeHttpServer` stack ran at ≈ 0.17× a bare `node:http` server for small
 * POSTs, `node:http` + one prebuilt runtime at ≈ 0.43× — see docs/gateway.md.
 *
 * @since 0.1.0
 */
import type { WebhookResponse } from "@cellgate/core"
import type { Outbox, RegionDirectory } from "@cellgate/core"
import { Delivery, errorResponse, Gateway, ProviderRegistry, StoreHealth } from "@cellgate/core"
import type { Fiber, Scope } from "effect"
import { Cause, Data, Effect, Exit, Runtime } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import * as Ingress from "./internal/Ingress.js"
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
 * Listens on `host:port` (`0` picks a free port): fails with `ListenError` (port taken, bad host…).
 *
 * @since 0.2.0
 * @category constructors
 */
export const listen = (server: Http.Server, port: number, host: string): Effect.Effect<void, ListenError> =>
  Effect.async<void, ListenError>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(new ListenError({ message: error.message })))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

/**
 * A server that listens but answers nothing yet: connections are accepted and their requests held (`/healthz`
 * included) until `open`, which handles them in arrival order and then every later request.
 *
 * @since 0.2.0
 * @category models
 */
export interface BoundServer extends RunningServer {
  /** Starts answering, on the services of the calling fiber. */
  readonly open: Effect.Effect<void, never, Services>
}

/**
 * What the server answers on: the gateway, the store's health (`/readyz`), the outbox and the regions (`/metrics`
 * gauges) and the providers (the label of a 413).
 *
 * @since 0.2.0
 * @category models
 */
export type Services =
  | Gateway.Gateway
  | StoreHealth.StoreHealth
  | Outbox.Outbox
  | RegionDirectory.RegionDirectory
  | ProviderRegistry.ProviderRegistry

const send = (res: Http.ServerResponse, response: WebhookResponse, closing: boolean) => {
  if (res.headersSent || res.destroyed) return
  res.writeHead(response.status, Ingress.responseHeaders(response, closing))
  const body = response.body
  res.end(typeof body === "string" ? body : body.length === 0 ? undefined : body)
}

const text = (status: number, body: string, contentType = "text/plain; charset=utf-8"): WebhookResponse => ({
  status,
  headers: { "content-type": contentType },
  body
})

/**
 * Binds the gateway's HTTP server in the current scope without answering anything (see `BoundServer`): a process
 * that cannot listen fails here, before it changes anything; `open` starts answering. Closing the scope shuts it down
 * gracefully (stops accepting, lets in-flight requests finish, then closes connections; requests still held because
 * it never opened are cut at once).
 *
 * Routes: `GET /healthz` → 200 `ok`; `GET /readyz` → `StoreHealth.check` (200 `ready` / 503); `GET /metrics` →
 * Prometheus text; everything else → `Gateway.Gateway` `handle`. A request target that is not a path (`OPTIONS *`,
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
    let runFork!: <A, E>(effect: Effect.Effect<A, E, Services>) => Fiber.RuntimeFiber<A, E>
    let health!: StoreHealth.StoreHealth["Type"]
    let gateway!: Gateway.Gateway["Type"]
    let registry!: ProviderRegistry.ProviderRegistry["Type"]
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
      effect: Effect.Effect<WebhookResponse, never, Services>,
      res: Http.ServerResponse,
      close = false
    ) => {
      const fiber = runFork(effect)
      fiber.addObserver((exit) => {
        if (Exit.isSuccess(exit)) send(res, exit.value, close || closing)
        else {
          if (!Cause.isInterruptedOnly(exit.cause)) {
            runFork(Effect.logError("request failed", exit.cause))
          }
          send(res, errorResponse(500, "internal_error", "the gateway failed to handle the request"), closing)
        }
      })
    }

    const handler = (
      req: Http.IncomingMessage,
      res: Http.ServerResponse,
      receivedAt: number,
      expectsContinue: boolean
    ) => {
      const method = req.method ?? "GET"
      const path = req.url ?? "/"
      if (!Ingress.isOriginForm(path)) {
        run(Ingress.badTarget(), res, true)
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
      if (Ingress.declaredTooLarge(req.headers["content-length"], options.maxBodyBytes)) {
        run(Ingress.tooLarge(path, options.maxBodyBytes, registry), res, true)
        req.resume()
        return
      }
      // `Expect: 100-continue` ('checkContinue'): the sender waits for this before it sends the body
      if (expectsContinue) res.writeContinue()
      Ingress.readBody(req, options.maxBodyBytes, (body) => {
        if (body === "too_large") run(Ingress.tooLarge(path, options.maxBodyBytes, registry), res, true)
        else if (body !== "aborted") {
          run(
            gateway.handle(Ingress.webhookRequest(method, path, Ingress.ingressHeaders(req.headers), body, receivedAt)),
            res
          )
        }
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
      listen(server, options.port, options.host),
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
      runFork = Runtime.runFork(yield* Effect.runtime<Services>())
      health = yield* StoreHealth.StoreHealth
      gateway = yield* Gateway.Gateway
      registry = yield* ProviderRegistry.ProviderRegistry
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
): Effect.Effect<RunningServer, ListenError, Scope.Scope | Services> =>
  Effect.flatMap(bind(options), ({ open, ...running }) => Effect.as(open, running))
