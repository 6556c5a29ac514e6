/**
 * GitHub and GitHub Enterprise: `/extensions/github/webhook/` and `/extensions/github-enterprise/webhook/`
 * (docs/routing.md#github).
 *
 * The integration is the app installation (`installation.id`; for GHE `"<X-GitHub-Enterprise-Host>:<id>"`). Each
 * delivery is checked against `X-Hub-Signature-256` (`sha256=` hex HMAC-SHA256 of the raw body) with the
 * integration's own `metadata.webhookSecret`, else the app secret `providers.<name>.webhookSecret`. When an app
 * secret is configured, the signature is checked against it on the raw bytes before the body is parsed, and a request
 * that fails it learns nothing else (401 even when its installation is unknown).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Redacted } from "effect"
import type { WebhookRequest } from "../Domain.js"
import { respond } from "../Domain.js"
import { getPath, idModulo, parseJsonObject } from "../Json.js"
import * as Mailbox from "../Mailbox.js"
import { countDropped } from "../Metrics.js"
import type { Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import {
  activeIntegration,
  constantTimeEquals,
  controlOutcome,
  enqueueTo,
  errorOutcome,
  header,
  hmacSha256Hex,
  idText,
  outcome,
  resolveIntegration
} from "./Common.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "github"

/**
 * @since 0.1.0
 * @category constants
 */
export const ENTERPRISE_NAME = "github_enterprise"

/** Events about the app installation itself: handled by the control side. */
const CONTROL_EVENTS: ReadonlySet<string> = new Set(["installation", "installation_repositories"])
const CHECK_RUN_KEPT: ReadonlySet<unknown> = new Set(["completed", "requested_action", "rerequested"])
const EVENT_PART = /^[a-z_]{1,64}$/

/**
 * The event's part of a mailbox name (docs/routing.md#github-event-type-mailboxes): `X-GitHub-Event` when it matches `[a-z_]{1,64}` (it is the
 * sender's header: anything else, or no header, adds nothing).
 *
 * @since 0.2.0
 * @category routing
 */
export const eventPart = (event: string | undefined): string | undefined =>
  event !== undefined && EVENT_PART.test(event) ? event : undefined

/**
 * `sha256=<hex HMAC-SHA256 of the raw body>`, the value of `X-Hub-Signature-256`.
 *
 * @since 0.1.0
 * @category verification
 */
export const signature = (secret: string | Redacted.Redacted<string>, body: Uint8Array): Effect.Effect<string> =>
  Effect.map(hmacSha256Hex(secret, body), (hex) => `sha256=${hex}`)

/**
 * Whether `X-Hub-Signature-256` is the signature of the raw body with `secret` (constant time; missing → false).
 *
 * @since 0.1.0
 * @category verification
 */
export const verifySignature = (
  secret: Redacted.Redacted<string>,
  body: Uint8Array,
  given: string | undefined
): Effect.Effect<boolean> =>
  given === undefined
    ? Effect.succeed(false)
    : Effect.flatMap(signature(secret, body), (expected) => constantTimeEquals(given.trim().toLowerCase(), expected))

/**
 * The reason a delivery is accepted and dropped (202, nothing stored), or `undefined`: `check_run` other than
 * `completed`, `requested_action`, `rerequested`; `check_suite` other than `completed`.
 *
 * @since 0.1.0
 * @category routing
 */
export const droppedEvent = (event: string | undefined, action: unknown): string | undefined => {
  if (event === "check_run" && !CHECK_RUN_KEPT.has(action)) return "check_run"
  if (event === "check_suite" && action !== "completed") return "check_suite"
  return undefined
}

const make_ = (name: string, enterprise: boolean): Provider => {
  // mailbox `<provider>:<region>:<integrationId>:<repository.id mod 100>:<X-GitHub-Event>`; no repository id → no
  // bucket, no (or an odd) event → no event part, so a `check_run` flood never sits in front of a `pull_request`
  const route = Effect.fnUntraced(function*(request: WebhookRequest, ports: Ports) {
    const event = header(request, "x-github-event")
    if (event !== undefined && CONTROL_EVENTS.has(event)) return controlOutcome(name, `${event} event`)

    const appSecret = Option.getOrUndefined(ports.secrets.webhookSecret(name))
    const given = header(request, "x-hub-signature-256")
    // On the raw bytes, before the body is parsed. Without a per-integration secret, this is the verdict.
    const appValid = appSecret === undefined ? undefined : yield* verifySignature(appSecret, request.body, given)
    const badSignature = () =>
      errorOutcome(
        name,
        401,
        "invalid_signature",
        given === undefined ? "missing X-Hub-Signature-256" : "X-Hub-Signature-256 does not match the body"
      )

    const data = parseJsonObject(request.body)
    const installationId = idText(getPath(data, "installation", "id"))
    const host = enterprise ? header(request, "x-github-enterprise-host")?.trim() : undefined
    if (installationId === undefined || (enterprise && (host === undefined || host === ""))) {
      if (appValid === false) return badSignature()
      const message = installationId === undefined
        ? "the body is not JSON with installation.id"
        : "missing X-GitHub-Enterprise-Host"
      return errorOutcome(name, 400, "missing_identity", message)
    }
    const externalId = enterprise ? `${host}:${installationId}` : installationId
    const found = yield* activeIntegration(ports, name, externalId)
    if (Option.isNone(found)) {
      if (appValid === false) return badSignature()
      return errorOutcome(name, 400, "integration_not_found", `no active integration for installation ${externalId}`)
    }
    const integration = found.value
    const own = integration.metadata.webhookSecret
    if (own !== undefined) {
      if (!(yield* verifySignature(own, request.body, given))) return badSignature()
    } else if (appValid === false) {
      return badSignature()
    } else if (appValid === undefined) {
      yield* ports.warnUnverified(name, `providers.${name}.webhookSecret`)
    }

    const dropped = droppedEvent(event, data.action)
    if (dropped !== undefined) {
      yield* countDropped(name, dropped)
      return outcome(name, respond(202, `dropped:${dropped}`), `dropped:${dropped}`, integration)
    }

    const resolved = yield* resolveIntegration(ports, name, integration)
    if (resolved._tag === "Left") return resolved.outcome
    const bucket = idModulo(getPath(data, "repository", "id"), 100)
    const kind = eventPart(event)
    return {
      ...resolved.base,
      decision: enqueueTo(
        name,
        integration.id,
        resolved.resolution,
        (region) => Mailbox.name(name, region, integration.id, bucket, kind)
      ),
      reason: "enqueue"
    }
  })

  return {
    name,
    routes: ["webhook/"],
    match: pathMatcher([["webhook", /^webhook\/$/]]),
    route: (request, _match, ports) => route(request, ports)
  }
}

/**
 * The `github` provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Provider => make_(NAME, false)

/**
 * The `github_enterprise` provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEnterprise = (): Provider => make_(ENTERPRISE_NAME, true)
