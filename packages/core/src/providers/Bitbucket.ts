/**
 * Bitbucket Cloud and Bitbucket Server: the organization id is in the path (docs/routing.md#bitbucket).
 *
 * - `bitbucket`: `/extensions/bitbucket/organizations/<org id>/webhook/`
 * - `bitbucket_server`: `/extensions/bitbucket-server/organizations/<org id>/webhook/<integration id>/`
 *
 * The payload goes to that organization's region, mailbox `<provider>:<region>:<orgId>` (no integration id). An
 * unknown organization, or one whose region is not in the directory, is `Control`. Nothing is verified at the edge.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { OrganizationId } from "../Ids.js"
import type { Ports, Provider, RouteMatch } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { controlOutcome, organizationOutcome } from "./Common.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const NAME = "bitbucket"

/**
 * @since 0.1.0
 * @category constants
 */
export const SERVER_NAME = "bitbucket_server"

/**
 * Whether a path segment is an id: digits without a leading zero, a safe integer (the one rule for ids in paths,
 * also used by `Plugins`).
 *
 * @since 0.2.0
 * @category routing
 */
export const isPositiveId = (text: string): boolean =>
  /^[1-9]\d{0,15}$/.test(text) && Number.isSafeInteger(Number(text))

const make_ = (name: string, routePath: string, pattern: RegExp): Provider => {
  // mailbox `<provider>:<region>:<orgId>`
  const route = Effect.fnUntraced(function*(_request: unknown, match: RouteMatch, ports: Ports) {
    const raw = match.params[0] ?? ""
    if (!isPositiveId(raw)) {
      return controlOutcome(name, "organization id is not a positive integer")
    }
    // what the route captured is checked (decoded) before anything is forwarded: `%2e%2e%2f…` is Control
    if (name === SERVER_NAME && !isPositiveId(match.params[1] ?? "")) {
      return controlOutcome(name, "integration id is not a positive integer")
    }
    const orgId = Number(raw) as OrganizationId
    const [org] = yield* ports.organizations.byIds([orgId])
    if (org === undefined) return controlOutcome(name, "unknown organization")
    return yield* organizationOutcome(name, org, ports)
  })
  return { name, routes: [routePath], match: pathMatcher([["webhook", pattern]]), route }
}

/**
 * The `bitbucket` (Cloud) provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Provider =>
  make_(NAME, "organizations/<org id>/webhook/", /^organizations\/([^/]+)\/webhook\/$/)

/**
 * The `bitbucket_server` provider.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeServer = (): Provider =>
  make_(
    SERVER_NAME,
    "organizations/<org id>/webhook/<integration id>/",
    /^organizations\/([^/]+)\/webhook\/([^/]+)\/$/
  )
