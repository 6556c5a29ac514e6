/**
 * cellgate's one HTTP client: one request/response exchange of bytes over `node:http` / `node:https`, against a base
 * URL that may carry a base path. The region client (`HttpRegionClient`) and the control proxy (`@cellgate/http`'s
 * `Control`) are both built on it, so every rule of the hop lives here once:
 *
 * - the request target must be origin-form (`/path?query`); its path is normalised with WHATWG URL semantics
 *   (`.`/`..` segments resolved, `%2e`/`%2E` dot segments included) and joined under the base path, so it never
 *   climbs above it; a path that would climb once an encoded slash is decoded is refused too (`bad_target`);
 * - `host` is the first header sent (a region's header limit cannot push it out), then the caller's headers in their
 *   order, then `content-length`;
 * - redirects are not followed (a 3xx is just an answer); the whole exchange (connect, send, answer, body) is bounded
 *   by `timeoutMs` → `timeout`; refused, reset, DNS and TLS failures → `connection`;
 * - the answer is read up to `maxAnswerBytes`: past it the socket is destroyed (the rest is never read) and the answer
 *   is `truncated`, its body the start;
 * - repeated answer headers (several `Set-Cookie`) stay separate, as an array of values;
 * - a request is sent once. A reset on a reused keep-alive socket is a `connection` failure like any other: the
 *   region may have read the request, so a re-send is the caller's new attempt.
 *
 * Never throws: whatever it is given, it answers or fails with an `ExchangeError`.
 *
 * @since 0.2.0
 */
import { Data, Effect } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"

/**
 * Keep-alive agents (one pool per scheme).
 *
 * @since 0.2.0
 * @category models
 */
export interface Agents {
  readonly http: Http.Agent
  readonly https: Https.Agent
  /** Base URLs already taken apart (`parseBase`), for the life of the agents. */
  readonly bases?: Map<string, Base> | undefined
}

/**
 * Options of the connection pools.
 *
 * @since 0.2.0
 * @category models
 */
export interface AgentOptions {
  /** Connections per host (default 64). */
  readonly maxSockets?: number
  /** Idle keep-alive connections kept per host (default 16). */
  readonly maxFreeSockets?: number
}

/**
 * Keep-alive agents for the life of the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeAgents = (options: AgentOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync((): Agents => {
      const agentOptions: Http.AgentOptions = {
        keepAlive: true,
        keepAliveMsecs: 1000,
        maxSockets: options.maxSockets ?? 64,
        maxFreeSockets: options.maxFreeSockets ?? 16,
        scheduling: "lifo"
      }
      return { http: new Http.Agent(agentOptions), https: new Https.Agent(agentOptions), bases: new Map() }
    }),
    (agents) =>
      Effect.sync(() => {
        agents.http.destroy()
        agents.https.destroy()
        agents.bases?.clear()
      })
  )

/**
 * A base URL taken apart: where to connect, the `host` header, and the base path (no trailing slash; `""` for none).
 *
 * @since 0.2.0
 * @category models
 */
export interface Base {
  readonly secure: boolean
  readonly hostname: string
  readonly port: number
  readonly host: string
  readonly basePath: string
}

/**
 * Parses a base URL (`http(s)://host[:port][/base/path]`); throws a `TypeError` on an invalid one.
 *
 * @since 0.2.0
 * @category utils
 */
export const parseBase = (url: string): Base => {
  const u = new URL(url)
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`not an http(s) URL: ${u.protocol}`)
  const secure = u.protocol === "https:"
  return {
    secure,
    hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
    port: u.port === "" ? (secure ? 443 : 80) : Number(u.port),
    host: u.host,
    basePath: u.pathname.endsWith("/") ? u.pathname.slice(0, -1) : u.pathname
  }
}

/** `parseBase` through the agents' cache (at most 1000 URLs; none without agents). */
const cachedBase = (agents: Agents | undefined, url: string): Base => {
  const bases = agents?.bases
  if (bases === undefined) return parseBase(url)
  let b = bases.get(url)
  if (b === undefined) {
    b = parseBase(url)
    if (bases.size >= 1000) bases.clear()
    bases.set(url, b)
  }
  return b
}

/** Already normal: origin-form characters only, no `%` or `\`, and no `.`/`..` segment. */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)+$/
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/
const ENCODED_SLASH = /%2f|%5c/gi
const ENCODED_DOT = /%2e/gi

/**
 * The path (with query) to request for `target` under `basePath`: `basePath` + the WHATWG-normalised path of the
 * target + its query exactly as given; `undefined` when the target is not origin-form (`*`, `http://host/…`, no
 * leading `/`, a fragment), or when a segment would still climb once an encoded slash (`%2F`, `%5C`) is decoded.
 * The result always starts with `basePath + "/"`.
 *
 * @since 0.2.0
 * @category utils
 */
export const upstreamPath = (basePath: string, target: string): string | undefined => {
  if (target.charCodeAt(0) !== 47 /* / */ || target.includes("#")) return undefined
  const q = target.indexOf("?")
  const rawPath = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? "" : target.slice(q)
  if (PLAIN_PATH.test(rawPath) && !DOT_SEGMENT.test(rawPath)) return basePath + rawPath + query
  let pathname: string
  try {
    // a base of our own, so that a path like `//evil/x` stays a path (never an authority)
    pathname = new URL("http://upstream.invalid" + rawPath).pathname
  } catch {
    return undefined
  }
  if (pathname.charCodeAt(0) !== 47) return undefined
  if (DOT_SEGMENT.test(pathname.replace(ENCODED_SLASH, "/").replace(ENCODED_DOT, "."))) return undefined
  return basePath + pathname + query
}

/**
 * One request.
 *
 * @since 0.2.0
 * @category models
 */
export interface ExchangeRequest {
  readonly method: string
  /** The origin-form request target (path with query), joined under the base path (`upstreamPath`). */
  readonly path: string
  /** Lower-cased names; an array is sent as repeated headers. `host`, `content-length` are set here. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string>>>
  readonly body: Uint8Array
  readonly timeoutMs: number
  /** Read at most this many bytes of the answer. */
  readonly maxAnswerBytes: number
}

/**
 * One answer.
 *
 * @since 0.2.0
 * @category models
 */
export interface ExchangeAnswer {
  readonly status: number
  /** Every header of the answer, lower-cased; a repeated one is an array of its values in order. */
  readonly headers: Record<string, string | ReadonlyArray<string>>
  /** The answer's body, or its first `maxAnswerBytes` when `truncated`. */
  readonly body: Uint8Array
  /** The answer was longer than `maxAnswerBytes`; the rest was not read (the socket was destroyed). */
  readonly truncated: boolean
}

/**
 * Why an exchange failed: `bad_target` (the request target is not an origin-form path under the base), `timeout`,
 * or `connection` (refused, reset, DNS, TLS, an invalid base URL or header).
 *
 * @since 0.2.0
 * @category errors
 */
export class ExchangeError extends Data.TaggedError("ExchangeError")<{
  readonly kind: "bad_target" | "timeout" | "connection"
  readonly detail: string
}> {}

const describe = (e: NodeJS.ErrnoException): string =>
  e.code !== undefined ? `${e.code}${e.message && !e.message.includes(e.code) ? `: ${e.message}` : ""}` : e.message

const answerHeaders = (
  distinct: Readonly<Record<string, Array<string> | undefined>>
): Record<string, string | ReadonlyArray<string>> => {
  const out: Record<string, string | ReadonlyArray<string>> = {}
  for (const k in distinct) {
    const v = distinct[k]
    if (v === undefined || v.length === 0) continue
    out[k] = v.length === 1 ? v[0]! : v
  }
  return out
}

const run = (
  agents: Agents | undefined,
  baseUrl: string,
  request: ExchangeRequest,
  onDone: (result: ExchangeAnswer | ExchangeError) => void
): () => void => {
  let finished = false
  let req: Http.ClientRequest | undefined
  const timing: { timer?: ReturnType<typeof setTimeout> } = {}
  const finish = (result: ExchangeAnswer | ExchangeError) => {
    if (finished) return
    finished = true
    if (timing.timer !== undefined) clearTimeout(timing.timer)
    onDone(result)
  }
  const cancel = () => {
    finished = true
    if (timing.timer !== undefined) clearTimeout(timing.timer)
    req?.destroy()
  }
  let base: Base
  try {
    base = cachedBase(agents, baseUrl)
  } catch (e) {
    finish(new ExchangeError({ kind: "connection", detail: `invalid base URL: ${(e as Error).message}` }))
    return cancel
  }
  const path = upstreamPath(base.basePath, request.path)
  if (path === undefined) {
    finish(new ExchangeError({ kind: "bad_target", detail: "the request target is not a path under the base URL" }))
    return cancel
  }
  const headers: Record<string, string | Array<string>> = { host: base.host }
  for (const k in request.headers) {
    if (k === "host" || k === "content-length") continue
    const v = request.headers[k]!
    headers[k] = typeof v === "string" ? v : [...v]
  }
  const hasBody = request.body.length > 0 || !(request.method === "GET" || request.method === "HEAD")
  if (hasBody) headers["content-length"] = String(request.body.length)
  const max = Math.max(0, request.maxAnswerBytes)
  try {
    req = (base.secure ? Https.request : Http.request)({
      hostname: base.hostname,
      port: base.port,
      method: request.method,
      path,
      headers,
      agent: agents === undefined ? undefined : base.secure ? agents.https : agents.http
    }, (res) => {
      const chunks: Array<Buffer> = []
      let size = 0
      const done = (truncated: boolean) => {
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
        finish({
          status: res.statusCode ?? 0,
          headers: answerHeaders(res.headersDistinct),
          body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
          truncated
        })
      }
      res.on("data", (chunk: Buffer) => {
        if (finished) return
        if (size + chunk.length > max) {
          if (max > size) chunks.push(chunk.subarray(0, max - size))
          size = Math.min(max, size + chunk.length)
          done(true)
          // the rest is never read: the socket goes, it is not given back to the pool
          req?.destroy()
          return
        }
        chunks.push(chunk)
        size += chunk.length
      })
      res.on("end", () => done(false))
      res.on("error", (e) => finish(new ExchangeError({ kind: "connection", detail: describe(e) })))
      res.on(
        "aborted",
        () => finish(new ExchangeError({ kind: "connection", detail: "connection closed while reading the answer" }))
      )
    })
  } catch (e) {
    // an invalid method, path or header value (ERR_INVALID_CHAR, ERR_UNESCAPED_CHARACTERS, …)
    finish(new ExchangeError({ kind: "connection", detail: describe(e as NodeJS.ErrnoException) }))
    return cancel
  }
  req.on("error", (e: NodeJS.ErrnoException) => finish(new ExchangeError({ kind: "connection", detail: describe(e) })))
  timing.timer = setTimeout(() => {
    finish(new ExchangeError({ kind: "timeout", detail: `no answer in ${request.timeoutMs} ms` }))
    req?.destroy()
  }, request.timeoutMs)
  req.end(hasBody ? request.body : undefined)
  return cancel
}

/**
 * One exchange with the server at `baseUrl` (its base path included): see the module's rules. Interrupting it
 * destroys the request.
 *
 * @since 0.2.0
 * @category utils
 */
export const exchange = (
  agents: Agents | undefined,
  baseUrl: string,
  request: ExchangeRequest
): Effect.Effect<ExchangeAnswer, ExchangeError> =>
  Effect.async<ExchangeAnswer, ExchangeError>((resume) => {
    const cancel = run(
      agents,
      baseUrl,
      request,
      (r) => resume(r instanceof ExchangeError ? Effect.fail(r) : Effect.succeed(r))
    )
    return Effect.sync(cancel)
  })
