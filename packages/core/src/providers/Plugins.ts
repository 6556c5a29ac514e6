/**
 * Plugin paths (docs/routing.md#plugin-paths), outside `/extensions/`: `/plugins/github/organizations/<org id>/webhook/` and
 * `/plugins/bitbucket/organizations/<org id>/webhook/`. The provider claims the `/plugins/` prefix
 * (`Provider.prefix`), so classification stays one code path.
 *
 * The payload goes to that organization's region, mailbox `plugins:<region>:<org id>` (no integration id). An
 * unknown organization is 400 `organization_not_found`; one whose region is not in the directory, an id that is not
 * digits, and any other `/plugins/…` path are `Control`. Nothing is verified at the edge (as Bitbucket).
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import type { OrganizationId } from "../Ids.js"
import type { Ports, Provider, RouteMatch } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { isPositiveId } from "./Bitbucket.js"
import { controlOutcome, errorOutcome, organizationOutcome } from "./Common.js"

/**
 * @since 0.2.0
 * @category constants
 */
export const NAME = "plugins"

/**
 * @since 0.2.0
 * @category constants
 */
export const PREFIX = "/plugins/"

// mailbox `plugins:<region>:<orgId>`
const route = Effect.fnUntraced(function*(_request: unknown, match: RouteMatch, ports: Ports) {
  const raw = match.params[1] ?? ""
  // what the route captured is checked (decoded) before anything is looked up: `%2e%2e%2f…` is Control
  if (!isPositiveId(raw)) return controlOutcome(NAME, "organization id is not a positive integer")
  const orgId = Number(raw) as OrganizationId
  const [org] = yield* ports.organizations.byIds([orgId])
  if (org === undefined) {
    return errorOutcome(NAME, 400, "organization_not_found", `no organization ${orgId}`)
  }
  return yield* organizationOutcome(NAME, org, ports)
})

/**
 * The `plugins` provider.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (): Provider => ({
  name: NAME,
  prefix: PREFIX,
  routes: ["github/organizations/<org id>/webhook/", "bitbucket/organizations/<org id>/webhook/"],
  match: pathMatcher([["webhook", /^(github|bitbucket)\/organizations\/([^/]+)\/webhook\/$/]]),
  route
})
