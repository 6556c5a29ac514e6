/**
 * The `RegionClient` over `node:http` / `node:https` with keep-alive agents: sends the method, `region.url` + path
 * (the path carries the query), the headers and the exact body bytes; never follows a redirect (a 3xx is just an
 * answer); the whole exchange (connect, send, answer, body) is bounded by `timeoutMs` → `RegionTransportError` of
 * kind `timeout`; refused, reset, DNS and TLS failures → kind `connection`.
 *
 * Built on `node:http` directly rather than `@effect/platform`'s `HttpClient`: the client only needs one
 * request/response exchange of bytes, and going direct keeps the exact bytes and path (no URL normalisation, no body
 * re-encoding), gives the Node error codes for the typed errors, and lets one stale keep-alive socket be retried once.
 *
 * @since 0.1.0
 */
import type { OutgoingRequest, RegionResponse } from "@cellgate/core"
import { RegionClient, RegionTransportError } from "@cellgate/core"
import { Effect, Layer } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"

/**
 * Options of the connection pools.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Connections per region host (default 64). */
  readonly maxSockets?: number
  /** Idle keep-alive connections kept per host (default 16). */
  readonly maxFreeSockets?: number
}

interface Target {
  readonly secure: boolean
  readonly hostname: string
  readonly port: number
  readonly prefix: string
}

const targets = new Map<string, Target>()

const parseTarget = (url: string): Target => {
  let t = targets.get(url)
  if (t === undefined) {
    const u = new URL(url)
    const secure = u.protocol === "https:"
    t = {
      secure,
      hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === "" ? (secure ? 443 : 80) : Number(u.port),
      prefix: u.pathname.endsWith("/") ? u.pathname.slice(0, -1) : u.pathname
    }
    if (targets.size > 1000) targets.clear()
    targets.set(url, t)
  }
  return t
}

class Failure {
  constructor(readonly kind: "timeout" | "connection", readonly detail: string, readonly retryStale: boolean) {}
}

const exchange = (
  agents: { readonly http: Http.Agent; readonly https: Https.Agent },
  target: Target,
  request: OutgoingRequest,
  timeoutMs: number,
  onDone: (result: RegionResponse | Failure) => void
): () => void => {
  const headers: Record<string, string> = { ...request.headers }
  const hasBody = request.body.length > 0 || !(request.method === "GET" || request.method === "HEAD")
  if (hasBody) headers["content-length"] = String(request.body.length)
  let finished = false
  const finish = (result: RegionResponse | Failure) => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    onDone(result)
  }
  const options: Http.RequestOptions = {
    hostname: target.hostname,
    port: target.port,
    method: request.method,
    path: target.prefix + request.path,
    headers,
    agent: target.secure ? agents.https : agents.http
  }
  const req = (target.secure ? Https.request : Http.request)(options, (res) => {
    const chunks: Array<Buffer> = []
    res.on("data", (chunk: Buffer) => chunks.push(chunk))
    res.on("end", () => {
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v
      }
      const body = Buffer.concat(chunks)
      finish({
        status: res.statusCode ?? 0,
        headers: out,
        body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
      })
    })
    res.on("error", (e) => finish(new Failure("connection", describe(e), false)))
    res.on("aborted", () => finish(new Failure("connection", "connection closed while reading the answer", false)))
  })
  req.on("error", (e: NodeJS.ErrnoException) => {
    // a keep-alive socket the region closed while idle: nothing reached the region, try once on a fresh one
    const stale = req.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE")
    finish(new Failure("connection", describe(e), stale))
  })
  const timer = setTimeout(() => {
    finish(new Failure("timeout", `no answer in ${timeoutMs} ms`, false))
    req.destroy()
  }, timeoutMs)
  req.end(hasBody ? request.body : undefined)
  return () => {
    finished = true
    clearTimeout(timer)
    req.destroy()
  }
}

const describe = (e: NodeJS.ErrnoException): string =>
  e.code !== undefined ? `${e.code}${e.message && !e.message.includes(e.code) ? `: ${e.message}` : ""}` : e.message

/**
 * A `RegionClient` over the given agents.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  agents: { readonly http: Http.Agent; readonly https: Https.Agent }
): RegionClient["Type"] => {
  const once = (target: Target, request: OutgoingRequest, timeoutMs: number) =>
    Effect.async<RegionResponse | Failure>((resume) => {
      const cancel = exchange(agents, target, request, timeoutMs, (r) => resume(Effect.succeed(r)))
      return Effect.sync(cancel)
    })
  return RegionClient.of({
    send: (region, request, { timeoutMs }) =>
      Effect.suspend(() => {
        const target = parseTarget(region.url)
        return Effect.flatMap(once(target, request, timeoutMs), (r) =>
          r instanceof Failure && r.retryStale ? once(target, request, timeoutMs) : Effect.succeed(r))
      }).pipe(
        Effect.flatMap((r) =>
          r instanceof Failure
            ? Effect.fail(new RegionTransportError({ region: region.name, kind: r.kind, detail: r.detail }))
            : Effect.succeed(r)
        )
      )
  })
}

/**
 * Keep-alive agents for the life of the layer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAgents = (options: Options = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const agentOptions: Http.AgentOptions = {
        keepAlive: true,
        keepAliveMsecs: 1000,
        maxSockets: options.maxSockets ?? 64,
        maxFreeSockets: options.maxFreeSockets ?? 16,
        scheduling: "lifo"
      }
      return { http: new Http.Agent(agentOptions), https: new Https.Agent(agentOptions) }
    }),
    (agents) =>
      Effect.sync(() => {
        agents.http.destroy()
        agents.https.destroy()
      })
  )

/**
 * The region client with its own keep-alive pools, closed with the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<RegionClient> =>
  Layer.scoped(RegionClient, Effect.map(makeAgents(options), make))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<RegionClient> = layerWith({})
