/**
 * Azure DevOps (`vsts`): `/extensions/vsts/issue-updated/` (docs/routing.md#azure-devops).
 *
 * The integration is the body's `resourceContainers.collection.id`; the `shared-secret` header must equal its
 * `metadata.webhookSecret` (constant time).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { WebhookRequest } from "../Domain.js"
import { getPath, parseJsonObject } from "../Json.js"
import * as Mailbox from "../Mailbox.js"
import type { Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { activeIntegration, enqueueOutcome, errorOutcome, header, resolveIntegration, secretMatches } from "./Common.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "vsts"

// mailbox `vsts:<region>:<integrationId>`
const route = Effect.fnUntraced(function*(request: WebhookRequest, ports: Ports) {
  const collectionId = getPath(parseJsonObject(request.body), "resourceContainers", "collection", "id")
  if (typeof collectionId !== "string" || collectionId === "") {
    return errorOutcome(NAME, 400, "missing_identity", "the body has no resourceContainers.collection.id")
  }
  const found = yield* activeIntegration(ports, NAME, collectionId)
  if (Option.isNone(found)) {
    return errorOutcome(NAME, 400, "integration_not_found", `no active integration for collection ${collectionId}`)
  }
  const integration = found.value
  const secret = integration.metadata.webhookSecret
  if (secret === undefined) yield* ports.warnUnverified(NAME, "integrations[].metadata.webhookSecret")
  else if (!(yield* secretMatches(header(request, "shared-secret"), secret))) {
    return errorOutcome(NAME, 401, "invalid_secret", "the shared-secret header does not match", integration)
  }
  const resolved = yield* resolveIntegration(ports, NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome
  return enqueueOutcome(NAME, integration, resolved, (r) => Mailbox.name(NAME, r, integration.id))
})

/**
 * The `vsts` provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Provider => ({
  name: NAME,
  routes: ["issue-updated/"],
  match: pathMatcher([["issue-updated", /^issue-updated\/$/]]),
  route: (request, _match, ports) => route(request, ports)
})
