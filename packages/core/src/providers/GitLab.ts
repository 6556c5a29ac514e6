/**
 * GitLab: `/extensions/gitlab/webhook/` (ROUTING.md §5).
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
import { countRelaxed } from "../Metrics.js"
import type { Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { VolumeGate } from "../Services.js"
import {
  activeIntegration,
  enqueueTo,
  errorOutcome,
  header,
  resolveIntegration,
  secretMatches,
  warnUnverified
} from "./Common.js"
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
 * `gitlab:<region>:<integrationId>`, plus `:<project.id mod 100>` while the volume gate is on.
 *
 * @since 0.1.0
 * @category routing
 */
export const mailboxName = (region: string, integrationId: number, bucket: number | undefined): string =>
  bucket === undefined ? `${NAME}:${region}:${integrationId}` : `${NAME}:${region}:${integrationId}:${bucket}`

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

const route = Effect.fnUntraced(function*(request: WebhookRequest) {
  const token = header(request, "x-gitlab-token")
  if (token === undefined || token === "") return errorOutcome(NAME, 400, "missing_token", MISSING_TOKEN)
  const parsed = parseToken(token)
  if (parsed === undefined) return errorOutcome(NAME, 400, "malformed_token", MALFORMED_TOKEN)
  const found = yield* activeIntegration(NAME, parsed.externalId)
  if (Option.isNone(found)) {
    return errorOutcome(NAME, 400, "integration_not_found", `no active integration for ${parsed.externalId}`)
  }
  const integration = found.value
  const secret = integration.metadata.webhookSecret
  if (secret === undefined) yield* warnUnverified(NAME, "integrations[].metadata.webhookSecret")
  else if (!(yield* secretMatches(parsed.secret, secret))) {
    return errorOutcome(NAME, 401, "invalid_secret", "the secret in X-Gitlab-Token does not match", integration)
  }

  const resolved = yield* resolveIntegration(NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome
  const now = yield* Clock.currentTimeMillis
  const gate = yield* VolumeGate
  const verdict = yield* gate.hit(`${NAME}:${integration.id}`, now, volumePolicy)
  if (verdict.switched) yield* countRelaxed("bucketing_switch")
  const bucket = verdict.bucketed ? idModulo(getPath(parseJsonObject(request.body), "project", "id"), 100) : undefined
  return {
    ...resolved.base,
    decision: enqueueTo(NAME, integration.id, resolved.resolution, (r) => mailboxName(r, integration.id, bucket)),
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
  route: (request) => route(request)
})
