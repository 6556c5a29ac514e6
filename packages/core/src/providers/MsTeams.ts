/**
 * Microsoft Teams: `/extensions/msteams/webhook/` (docs/routing.md#microsoft-teams).
 *
 * Bot Framework activities. Installation traffic (`type` missing, `installationUpdate`, `conversationUpdate` with
 * `membersAdded`) goes to the control side; otherwise the integration is `value.payload.integrationId` (a card action
 * carries the internal id), else `channelData.team.id` (the external id). No usable id → `Control`. Bot Framework
 * tokens are not verified at the edge yet (wave 2).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Integration, WebhookRequest } from "../Domain.js"
import type { StoreUnavailable } from "../Errors.js"
import type { IntegrationId } from "../Ids.js"
import { getPath, isTruthy, parseJsonObject } from "../Json.js"
import * as Mailbox from "../Mailbox.js"
import type { Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import {
  activeIntegration,
  controlOutcome,
  enqueueOutcome,
  errorOutcome,
  idText,
  resolveIntegration
} from "./Common.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "msteams"

/**
 * Why an activity belongs to the control side, or `undefined`.
 *
 * @since 0.1.0
 * @category routing
 */
export const controlReason = (data: Readonly<Record<string, unknown>>): string | undefined => {
  const type = data.type
  if (type === undefined || type === null || type === "") return "activity without type"
  if (type === "installationUpdate") return "installationUpdate"
  if (type === "conversationUpdate" && isTruthy(data.membersAdded)) return "conversationUpdate with membersAdded"
  return undefined
}

const byInternalId = (ports: Ports, id: number): Effect.Effect<Option.Option<Integration>, StoreUnavailable> =>
  Effect.map(
    ports.integrations.byId(id as IntegrationId),
    Option.filter((i) => i.status === "active" && i.provider === NAME)
  )

// mailbox `msteams:<region>:<integrationId>`
const route = Effect.fnUntraced(function*(request: WebhookRequest, ports: Ports) {
  const data = parseJsonObject(request.body)
  const why = controlReason(data)
  if (why !== undefined) return controlOutcome(NAME, why)
  const internal = idText(getPath(data, "value", "payload", "integrationId"))
  const internalId = internal === undefined ? undefined : Number(internal)
  const teamId = getPath(data, "channelData", "team", "id")
  let found: Option.Option<Integration>
  let described: string
  if (internalId !== undefined && Number.isSafeInteger(internalId) && internalId > 0) {
    found = yield* byInternalId(ports, internalId)
    described = `integration ${internalId}`
  } else if (typeof teamId === "string" && teamId !== "") {
    found = yield* activeIntegration(ports, NAME, teamId)
    described = `team ${teamId}`
  } else {
    return controlOutcome(NAME, "no integration id or team id")
  }
  if (Option.isNone(found)) {
    return errorOutcome(NAME, 400, "integration_not_found", `no active integration for ${described}`)
  }
  const integration = found.value
  const resolved = yield* resolveIntegration(ports, NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome
  return enqueueOutcome(NAME, integration, resolved, (r) => Mailbox.name(NAME, r, integration.id))
})

/**
 * The `msteams` provider.
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
