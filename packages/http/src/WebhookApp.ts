/**
 * cellgate as an `@effect/platform` `HttpApp`, for mounting in an application's own `HttpRouter`:
 *
 * ```ts
 * const router = HttpRouter.empty.pipe(
 *   HttpRouter.get("/health", HttpServerResponse.text("ok")),
 *   HttpRouter.all("/extensions/*", WebhookApp.make()),
 *   HttpRouter.all("/plugins/*", WebhookApp.make())
 * )
 * ```
 *
 * It reads the raw body with the size limit and answers exactly as `cellgate serve` does on those paths (the same
 * conversions, `internal/Ingress.ts`): `Gateway.Gateway`'s `handle`, 413 `payload_too_large` JSON over the limit
 * (declared `content-length` first, then counted while reading; `connection: close`), 400 `bad_request` for a request
 * target that is not a path. Transport-level behaviour (`100-continue`, timeouts, keep-alive) is the host server's.
 *
 * @since 0.2.0
 */
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import { Gateway, ProviderRegistry } from "@cellgate/core"
import type { HttpApp } from "@effect/platform"
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Stream } from "effect"
import * as Http from "node:http"
import * as Ingress from "./internal/Ingress.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Bodies larger than this are answered 413 (default `defaults.maxBodyBytes`, 1 MiB, as `server.maxBodyBytes`). */
  readonly maxBodyBytes?: number | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export const defaults: { readonly maxBodyBytes: number } = {
  maxBodyBytes: Ingress.DEFAULT_MAX_BODY_BYTES
}

/**
 * The answer as an `HttpServerResponse`: the headers `cellgate serve` writes (`Ingress.responseHeaders`, a repeated
 * header kept as separate values), the body as is.
 *
 * @since 0.2.0
 * @category conversions
 */
export const toServerResponse = (response: WebhookResponse, closing = false): HttpServerResponse.HttpServerResponse => {
  const headers = Ingress.responseHeaders(response, closing)
  let out = HttpServerResponse.raw(response.body, { status: response.status, headers })
  // `Headers.fromInput` joins an array with ", ": a repeated header (several `Set-Cookie`) is set back as its values
  for (const name in headers) {
    const value = headers[name]!
    if (typeof value !== "string") out = HttpServerResponse.setHeader(out, name, value as unknown as string)
  }
  return out
}

type Body = Uint8Array | "too_large" | "aborted"

/** The body of a node:http request, read as `cellgate serve` reads it. */
const nodeBody = (req: Http.IncomingMessage, maxBodyBytes: number): Effect.Effect<Body> =>
  Effect.async<Body>((resume) => Ingress.readBody(req, maxBodyBytes, (body) => resume(Effect.succeed(body))))

/** The body of any other host's request (a web `Request`…), through the platform's stream, with the same limit. */
const streamBody = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number): Effect.Effect<Body> =>
  Effect.suspend(() => {
    const collector = new Ingress.BodyCollector(maxBodyBytes)
    return Stream.runForEachWhile(request.stream, (chunk) => Effect.sync(() => collector.push(chunk))).pipe(
      Effect.match({
        onFailure: (): Body => "aborted",
        onSuccess: (): Body => (collector.tooLarge ? "too_large" : collector.body)
      })
    )
  })

/** 413, counted under the provider label of the path with the application's `ProviderRegistry` when it has one. */
const tooLarge = (path: string, maxBodyBytes: number) =>
  Effect.flatMap(
    Effect.serviceOption(ProviderRegistry.ProviderRegistry),
    (registry) =>
      Effect.map(
        Ingress.tooLarge(path, maxBodyBytes, Option.getOrUndefined(registry)),
        (response) => toServerResponse(response, true)
      )
  )

/**
 * The gateway as an `HttpApp` over `Gateway.Gateway` (looked up in the context the app runs in: provide
 * `Gateway.layer` where the router is served). Never fails; a request whose connection is gone is interrupted.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}): HttpApp.Default<never, Gateway.Gateway> => {
  const maxBodyBytes = options.maxBodyBytes ?? defaults.maxBodyBytes
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const receivedAt = Date.now()
    const path = request.url
    if (!Ingress.isOriginForm(path)) return Effect.map(Ingress.badTarget(), (r) => toServerResponse(r, true))
    const source = request.source
    const node = source instanceof Http.IncomingMessage ? source : undefined
    const raw = node !== undefined ? node.headers : request.headers
    if (Ingress.declaredTooLarge(raw["content-length"] as string | undefined, maxBodyBytes)) {
      return tooLarge(path, maxBodyBytes)
    }
    return Effect.flatMap(
      node !== undefined ? nodeBody(node, maxBodyBytes) : streamBody(request, maxBodyBytes),
      (body) => {
        if (body === "aborted") return Effect.interrupt
        if (body === "too_large") return tooLarge(path, maxBodyBytes)
        const webhook: WebhookRequest = Ingress.webhookRequest(
          request.method,
          path,
          Ingress.ingressHeaders(raw),
          body,
          receivedAt
        )
        return Effect.flatMap(
          Gateway.Gateway,
          (gateway) => Effect.map(gateway.handle(webhook), (r) => toServerResponse(r))
        )
      }
    )
  })
}
