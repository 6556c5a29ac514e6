/**
 * Jira Server (Data Center): `/extensions/jira-server/issue-updated/<token>/` — the central case of docs/routing.md#jira-server.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Redacted } from "effect"
import * as Jose from "jose"
import type { Integration, Region, RouteOutcome } from "../Domain.js"
import { Enqueue, respond } from "../Domain.js"
import { InvalidToken } from "../Errors.js"
import type { IntegrationRepo } from "../IntegrationRepo.js"
import { getPath, idModulo, isTruthy, parseJsonObject } from "../Json.js"
import * as Mailbox from "../Mailbox.js"
import { countRelaxed } from "../Metrics.js"
import type { Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import * as Redaction from "../Redaction.js"
import { regionNames, resolveWith } from "../Resolve.js"
import { TtlCache } from "../TtlCache.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "jira_server"

/**
 * The high-volume gate: more than 3000 webhooks of one integration in an hour turns bucketing on for 24 hours.
 *
 * @since 0.1.0
 * @category constants
 */
export const volumePolicy = { limit: 3000, windowMs: 60 * 60 * 1000, holdMs: 24 * 60 * 60 * 1000 } as const

const encoder = new TextEncoder()

/**
 * Mints the webhook token an integration registers in Jira at install time: HS256 over `{"id": externalId}`, the
 * same bytes the reference (PyJWT) produces.
 *
 * @since 0.1.0
 * @category constructors
 */
export const jiraServerToken = (externalId: string, secret: string | Redacted.Redacted<string>): Promise<string> =>
  new Jose.SignJWT({ id: externalId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(encoder.encode(typeof secret === "string" ? secret : Redacted.value(secret)))

/**
 * Checks a token (docs/routing.md#jira-server, in order) and returns the active integration it belongs to.
 *
 * @since 0.1.0
 * @category verification
 */
export const verifyToken = Effect.fn("JiraServer.verifyToken")(function*(
  rawToken: string,
  repo: IntegrationRepo["Type"]
) {
  const token = rawToken.trim()
  if (token === "") return yield* new InvalidToken({ reason: "Token was empty" })
  const claims = yield* Effect.try({
    try: () => Jose.decodeJwt(token),
    catch: () => new InvalidToken({ reason: "Could not decode JWT token" })
  })
  if (typeof claims.id !== "string") return yield* new InvalidToken({ reason: "Token did not contain `id`" })
  const found = yield* repo.byExternalId(NAME, claims.id)
  if (Option.isNone(found) || found.value.status !== "active") {
    return yield* new InvalidToken({ reason: "Could not find integration for token" })
  }
  const integration = found.value
  const secret = integration.metadata.webhookSecret
  if (secret === undefined) {
    return yield* new InvalidToken({ reason: "Could not validate JWT: the integration has no webhook secret" })
  }
  const now = yield* Clock.currentTimeMillis
  const verified = yield* Effect.tryPromise({
    try: () =>
      Jose.jwtVerify(token, encoder.encode(Redacted.value(secret)), {
        algorithms: ["HS256"],
        currentDate: new Date(now)
      }),
    catch: (error) =>
      new InvalidToken({ reason: `Could not validate JWT: ${error instanceof Error ? error.message : "invalid"}` })
  })
  return { integration, expiresAt: typeof verified.payload.exp === "number" ? verified.payload.exp * 1000 : undefined }
})

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long a token's verdict is reused without checking it again (default 10 s): a verified token's integration,
   * or a rejected token's reason. Never past the token's own `exp`.
   */
  readonly tokenCacheTtlMs?: number
  /** Entries in each of the two caches, verified and rejected (default 10 000; the oldest entry makes room). */
  readonly tokenCacheCapacity?: number
}

const TOKEN_ROUTE = /^issue-updated\/([^/]+)\/$/

/**
 * Builds the provider; its verified-token cache lives as long as the provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Provider => {
  // two caches, so that a flood of bad tokens cannot push the good ones out; a rejected token keeps its whole
  // outcome, built once: answering it again is a lookup, with no decision constructed per request
  const verified = new TtlCache<string, Integration>(options.tokenCacheCapacity ?? 10_000)
  const rejected = new TtlCache<string, RouteOutcome>(options.tokenCacheCapacity ?? 10_000)
  const ttl = options.tokenCacheTtlMs ?? 10_000

  const rejectedOutcome = (invalid: InvalidToken): RouteOutcome => ({
    ...outcome(respond(200, invalid.reason), null),
    event: { message: "jira_server.no_integration", fields: { error: invalid.reason } }
  })

  // the Enqueue decision of one integration, region list and bucket is the same value every time: built once
  // (bounded: emptied when full)
  const decisions = new Map<string, Enqueue>()
  const enqueueDecision = (
    integrationId: Integration["id"],
    regions: ReadonlyArray<Region>,
    bucket: number | undefined
  ): Enqueue => {
    let key = `${integrationId}:${bucket ?? ""}`
    for (const r of regions) key += `\u0000${r.name}`
    let decision = decisions.get(key)
    if (decision === undefined) {
      decision = new Enqueue({
        provider: NAME,
        integrationId,
        targets: regions.map((r) => ({
          region: r.name,
          mailbox: Mailbox.name(NAME, r.name, integrationId, bucket)
        }))
      }, { disableValidation: true })
      if (decisions.size >= 4096) decisions.clear()
      decisions.set(key, decision)
    }
    return decision
  }

  // the mailbox of one region's copy: `jira_server:<region>:<integrationId>`, plus `:<issue.id mod 100>` while
  // bucketing is on (an issue id that is missing, zero, or not numeric gives no bucket, as in the reference)
  const routeIntegration = Effect.fnUntraced(
    function*(request: { readonly body: Uint8Array }, integration: Integration, ports: Ports) {
      const resolution = yield* resolveWith(ports.organizations, ports.regions, integration.id)
      const base = {
        provider: NAME,
        integration,
        organizations: resolution.organizations,
        regions: regionNames(resolution)
      }
      if (resolution.organizations.length === 0) {
        return { ...base, decision: respond(400, "no active organization"), reason: "no active organization" }
      }
      const data = parseJsonObject(request.body)
      if (!isTruthy(data.changelog)) {
        return {
          ...base,
          decision: respond(200, "missing-changelog"),
          reason: "missing-changelog",
          event: { message: "missing-changelog", fields: { integration_id: integration.id } }
        }
      }
      const now = yield* Clock.currentTimeMillis
      const verdict = yield* ports.volumeGate.hit(`${NAME}:${integration.id}`, now, volumePolicy)
      if (verdict.switched) yield* countRelaxed("bucketing_switch")
      const issueId = getPath(data, "issue", "id")
      const bucket = verdict.bucketed && isTruthy(issueId) ? idModulo(issueId, 100) : undefined
      const decision = enqueueDecision(integration.id, resolution.regions, bucket)
      return {
        ...base,
        decision,
        reason: bucket === undefined ? "enqueue" : "enqueue (bucketed)"
      } satisfies RouteOutcome
    }
  )

  // a token's verdict from the caches, else checked (and remembered); a refused token is answered here (200), a
  // store that cannot be read fails the route (503) and is asked again next time
  const route = (request: { readonly body: Uint8Array }, token: string, ports: Ports) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const known = verified.get(token, now)
      if (known !== undefined) return routeIntegration(request, known, ports)
      const refused = rejected.get(token, now)
      if (refused !== undefined) return Effect.succeed(refused)
      return Effect.matchEffect(verifyToken(token, ports.integrations), {
        onFailure: (error) => {
          if (error._tag !== "InvalidToken") return Effect.fail(error)
          const answer = rejectedOutcome(error)
          rejected.set(token, answer, now + ttl)
          return Effect.succeed(answer)
        },
        onSuccess: ({ expiresAt, integration }) => {
          verified.set(token, integration, Math.min(now + ttl, expiresAt ?? Infinity))
          return routeIntegration(request, integration, ports)
        }
      })
    })

  return {
    name: NAME,
    routes: ["issue-updated/<token>/"],
    match: pathMatcher([["issue-updated", TOKEN_ROUTE]]),
    route: (request, match, ports) => route(request, match.params[0] ?? "", ports)
  }
}

const outcome = (decision: RouteOutcome["decision"], integration: Integration | null): RouteOutcome => ({
  provider: NAME,
  decision,
  reason: decision._tag === "Respond" ? decision.reason : decision._tag,
  integration,
  organizations: [],
  regions: []
})

/**
 * The path with its token replaced by `<token>`, for logs: core's structural redactor (`Redaction.redactPath`), which
 * finds the token whatever the spelling of the route (letter case, `_`, doubled separators or slashes,
 * percent-encoding), so the gateway needs no hook of this provider's own.
 *
 * @since 0.1.0
 * @category utils
 */
export const redactPath: (path: string) => string = Redaction.redactPath
