/**
 * Jira Cloud (Atlassian Connect): `/extensions/jira/issue-updated/` (Enqueue) and `/extensions/jira/issue/<key>/`
 * (Forward to the first region; a transport failure falls back to the control side, docs/routing.md#jira-cloud-forward-fallback) — docs/routing.md#jira-cloud.
 *
 * The request carries a Connect JWT (`Authorization: JWT <token>`, else `?jwt=`): `iss` is the clientKey, i.e. the
 * integration's external id; it must verify under HS256 with the integration's `metadata.sharedSecret`, carry an
 * `exp` in the future, and a `qsh` equal to the hex SHA-256 of the canonical request. Every failure is 404.
 *
 * @since 0.1.0
 */
import { Array as Arr, Clock, Effect, Option, Order, Redacted } from "effect"
import * as Jose from "jose"
import type { Integration, RouteOutcome, WebhookRequest } from "../Domain.js"
import { Forward } from "../Domain.js"
import * as Mailbox from "../Mailbox.js"
import type { Ports, Provider, RouteMatch } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import {
  activeIntegration,
  controlOutcome,
  enqueueOutcome,
  errorOutcome,
  header,
  resolveIntegration,
  sha256Hex
} from "./Common.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "jira"

const encoder = new TextEncoder()

const decodeComponent = (s: string): string => {
  try {
    return decodeURIComponent(s.replaceAll("+", " "))
  } catch {
    return s
  }
}

/**
 * RFC 3986 percent-encoding: everything but letters, digits and `-._~`.
 *
 * @since 0.1.0
 * @category verification
 */
export const percentEncode = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/**
 * Atlassian's canonical request: `METHOD&<path without trailing slash>&<query>`, the query without `jwt`, sorted by
 * encoded name, names and values percent-encoded, repeated values joined by `,` in the order received.
 *
 * @since 0.1.0
 * @category verification
 */
export const canonicalRequest = (method: string, pathWithQuery: string): string => {
  const q = pathWithQuery.indexOf("?")
  const rawPath = q === -1 ? pathWithQuery : pathWithQuery.slice(0, q)
  const query = q === -1 ? "" : pathWithQuery.slice(q + 1)
  let path = rawPath.replace(/\/+$/, "")
  if (path === "") path = "/"
  path = path.replaceAll("&", "%26")
  const params = new Map<string, Array<string>>()
  for (const pair of query.split("&")) {
    if (pair === "") continue
    const eq = pair.indexOf("=")
    const key = percentEncode(decodeComponent(eq === -1 ? pair : pair.slice(0, eq)))
    if (key === "jwt") continue
    const value = percentEncode(decodeComponent(eq === -1 ? "" : pair.slice(eq + 1)))
    const values = params.get(key)
    if (values === undefined) params.set(key, [value])
    else values.push(value)
  }
  const sorted = Arr.sort(params.keys(), Order.string)
  const canonicalQuery = sorted.map((k) => `${k}=${params.get(k)!.join(",")}`).join("&")
  return `${method.toUpperCase()}&${path}&${canonicalQuery}`
}

/**
 * The `qsh` claim a request must carry: hex SHA-256 of its canonical request.
 *
 * @since 0.1.0
 * @category verification
 */
export const queryStringHash = (method: string, pathWithQuery: string): Effect.Effect<string> =>
  sha256Hex(canonicalRequest(method, pathWithQuery))

/**
 * The Connect JWT of a request: `Authorization: JWT <token>`, else the `jwt` query parameter.
 *
 * @since 0.1.0
 * @category verification
 */
export const extractJwt = (request: WebhookRequest): string | undefined => {
  const auth = header(request, "authorization")
  if (auth !== undefined) {
    const m = /^JWT\s+(\S+)\s*$/i.exec(auth.trim())
    if (m !== null) return m[1]
  }
  const q = request.path.indexOf("?")
  if (q === -1) return undefined
  for (const pair of request.path.slice(q + 1).split("&")) {
    if (pair.startsWith("jwt=")) {
      const token = decodeComponent(pair.slice(4))
      if (token !== "") return token
    }
  }
  return undefined
}

/**
 * The one answer to every JWT that is not valid, whatever the reason: the sender must not learn whether a clientKey
 * exists (the reason is kept for the log line and `explain` only).
 *
 * @since 0.2.0
 * @category constants
 */
export const INVALID_JWT = "the JWT is not valid"

const notFound = (reason: string, integration: Integration | null = null): RouteOutcome => ({
  ...errorOutcome(NAME, 404, "not_found", INVALID_JWT, integration),
  reason
})

// the mailbox of `issue-updated/` payloads: `jira:<region>:<integrationId>`
const route = Effect.fnUntraced(function*(request: WebhookRequest, match: RouteMatch, ports: Ports) {
  if (match.route === "issue" && !ISSUE_KEY.test(match.params[0] ?? "")) return controlOutcome(NAME, "not an issue key")
  const token = extractJwt(request)
  if (token === undefined) return errorOutcome(NAME, 404, "not_found", "no JWT in Authorization or ?jwt=")
  let claims: Jose.JWTPayload
  try {
    claims = Jose.decodeJwt(token)
  } catch {
    return notFound("could not decode the JWT")
  }
  if (typeof claims.iss !== "string" || claims.iss === "") return notFound("the JWT has no iss")
  const found = yield* activeIntegration(ports, NAME, claims.iss)
  if (Option.isNone(found)) return notFound("no active integration for the JWT's iss")
  const integration = found.value
  const secret = integration.metadata.sharedSecret
  if (secret === undefined) {
    yield* ports.warnUnverified(NAME, "integrations[].metadata.sharedSecret")
  } else {
    const now = yield* Clock.currentTimeMillis
    const verified = yield* Effect.either(Effect.tryPromise({
      try: () =>
        Jose.jwtVerify(token, encoder.encode(Redacted.value(secret)), {
          algorithms: ["HS256"],
          requiredClaims: ["exp", "qsh"],
          currentDate: new Date(now)
        }),
      catch: (error) => (error instanceof Error ? error.message : "invalid")
    }))
    if (verified._tag === "Left") return notFound(`could not validate the JWT: ${verified.left}`, integration)
    const expected = yield* queryStringHash(request.method, request.path)
    if (verified.right.payload.qsh !== expected) return notFound("query hash mismatch", integration)
  }

  const resolved = yield* resolveIntegration(ports, NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome
  if (match.route === "issue") {
    return {
      ...resolved.base,
      // docs/routing.md#jira-cloud-forward-fallback: a region that cannot be reached (or times out) leaves the issue page to the control side
      decision: new Forward({ regions: resolved.base.regions, mode: "first", onTransportFailure: "control" }, {
        disableValidation: true
      }),
      reason: "forward first"
    }
  }
  return enqueueOutcome(NAME, integration, resolved, (r) => Mailbox.name(NAME, r, integration.id))
})

/**
 * The `jira` (Cloud) provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Provider => ({
  name: NAME,
  routes: ["issue-updated/", "issue/<issue key>/"],
  match: pathMatcher([["issue-updated", /^issue-updated\/$/], ["issue", /^issue\/([^/]+)\/$/]]),
  route
})

/**
 * The shape of an issue key (`<project key>-<number>`: a letter, then letters, digits or `_`; a positive number),
 * checked on the percent-decoded segment before anything is forwarded: anything else (dot segments, encoded
 * slashes) is `Control`.
 *
 * @since 0.2.0
 * @category routing
 */
export const ISSUE_KEY = /^[A-Za-z][A-Za-z0-9_]{0,254}-[1-9][0-9]{0,17}$/
