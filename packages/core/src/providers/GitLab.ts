/**
 * GitLab: `/extensions/gitlab/webhook/` (docs/routing.md#gitlab).
 *
 * `X-Gitlab-Token` is `<instance>:<group path>:<secret>`: the first two parts are the integration's external id, the
 * third is checked in constant time against its `metadata.webhookSecret`, all before the body is read. Mailboxes are
 * bucketed by `project.id` under the same volume gate as Jira Server.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option } from "effect"
import type { WebhookRequest } from "../Domain.js"
import { getPath, idModulo, parseJsonObject } from "../Json.js"
import * as Mailbox from "../Mailbox.js"
import { countRelaxed } from "../Metrics.js"
import type { Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { activeIntegration, enqueueTo, errorOutcome, header, resolveIntegration, secretMatches } from "./Common.js"
import { volumePolicy } from "./JiraServer.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "gitlab"

/**
 * @since 0.1.0
 * @category constants
 */
export const MISSING_TOKEN = "The customer needs to set a Secret Token in their webhook."

/**
 * @since 0.1.0
 * @category constants
 */
export const MALFORMED_TOKEN = "The customer's Secret Token is malformed."

/**
 * The token split into the external id and the secret, or `undefined` when it is not exactly three `:` parts.
 *
 * @since 0.1.0
 * @category verification
 */
export const parseToken = (
  token: string
): { readonly externalId: string; readonly secret: string } | undefined => {
  const parts = token.split(":")
  if (parts.length !== 3) return undefined
  return { externalId: `${parts[0]}:${parts[1]}`, secret: parts[2]! }
}

// mailbox `gitlab:<region>:<integrationId>`, plus `:<project.id mod 100>` while the volume gate is on
const route = Effect.fnUntraced(function*(request: WebhookRequest, ports: Ports) {
  const token = header(request, "x-gitlab-token")
  if (token === undefined || token === "") return errorOutcome(NAME, 400, "missing_token", MISSING_TOKEN)
  const parsed = parseToken(token)
  if (parsed === undefined) return errorOutcome(NAME, 400, "malformed_token", MALFORMED_TOKEN)
  const found = yield* activeIntegration(ports, NAME, parsed.externalId)
  if (Option.isNone(found)) {
    return errorOutcome(NAME, 400, "integration_not_found", `no active integration for ${parsed.externalId}`)
  }
  const integration = found.value
  const secret = integration.metadata.webhookSecret
  if (secret === undefined) yield* ports.warnUnverified(NAME, "integrations[].metadata.webhookSecret")
  else if (!(yield* secretMatches(parsed.secret, secret))) {
    return errorOutcome(NAME, 401, "invalid_secret", "the secret in X-Gitlab-Token does not match", integration)
  }

  const resolved = yield* resolveIntegration(ports, NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome
  const now = yield* Clock.currentTimeMillis
  const verdict = yield* ports.volumeGate.hit(`${NAME}:${integration.id}`, now, volumePolicy)
  if (verdict.switched) yield* countRelaxed("bucketing_switch")
  const bucket = verdict.bucketed ? idModulo(getPath(parseJsonObject(request.body), "project", "id"), 100) : undefined
  return {
    ...resolved.base,
    decision: enqueueTo(
      NAME,
      integration.id,
      resolved.resolution,
      (r) => Mailbox.name(NAME, r, integration.id, bucket)
    ),
    reason: bucket === undefined ? "enqueue" : "enqueue (bucketed)"
  }
})

/**
 * The `gitlab` provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Provider => ({
  name: NAME,
  routes: ["webhook/"],
  match: pathMatcher([["webhook", /^webhook\/$/]]),
  route: (request, _match, ports) => route(request, ports)
})
