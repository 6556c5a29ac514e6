/**
 * Providers and the registry, and classification of a path (ROUTING.md §2).
 *
 * A provider is a value: its name, the webhook paths it routes, and a `route` program. Adding a provider is adding a
 * module and an entry in the registry.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Context, Layer } from "effect"
import type { RouteOutcome, WebhookRequest } from "./Domain.js"
import type { RegionNotFound, StoreUnavailable } from "./Errors.js"
import type { IntegrationRepo, OrgRepo, RegionDirectory, VolumeGate } from "./Services.js"

/**
 * The services a provider may use while routing (and `ProviderSecrets`, a reference with a default).
 *
 * @since 0.1.0
 * @category models
 */
export type ProviderContext = IntegrationRepo | OrgRepo | RegionDirectory | VolumeGate

/**
 * Which webhook route of a provider a path matched, with the path segments it captured (percent-decoded).
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteMatch {
  readonly route: string
  readonly params: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Provider {
  /** `jira_server`, `github`… (the path segment with `-` turned into `_`). */
  readonly name: string
  /** The webhook paths it routes, for docs and `explain` (e.g. `issue-updated/<token>/`). */
  readonly routes: ReadonlyArray<string>
  /** `rest` is the path after `/extensions/<provider>/`, without the query. `undefined`: not a webhook path. */
  readonly match: (rest: string) => RouteMatch | undefined
  readonly route: (
    request: WebhookRequest,
    match: RouteMatch
  ) => Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable, ProviderContext>
  /** Replaces secrets in a path (tokens) for logs. */
  readonly redactPath?: (path: string) => string
}

/**
 * A route table entry: `pattern` is matched against the whole rest of the path; its groups are the params.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pathMatcher =
  (routes: ReadonlyArray<readonly [route: string, pattern: RegExp]>) => (rest: string): RouteMatch | undefined => {
    for (const [route, pattern] of routes) {
      const m = pattern.exec(rest)
      if (m !== null) return { route, params: m.slice(1).map(decodeSegment) }
    }
    return undefined
  }

const decodeSegment = (segment: string | undefined): string => {
  if (segment === undefined) return ""
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/**
 * The providers cellgate knows, by name.
 *
 * @since 0.1.0
 * @category services
 */
export class ProviderRegistry extends Context.Tag("@cellgate/core/ProviderRegistry")<ProviderRegistry, {
  readonly get: (name: string) => Provider | undefined
  readonly all: ReadonlyArray<Provider>
}>() {
  /**
   * @since 0.1.0
   * @category constructors
   */
  static readonly make = (providers: ReadonlyArray<Provider>): ProviderRegistry["Type"] => {
    const byName = new Map(providers.map((p) => [p.name, p] as const))
    return ProviderRegistry.of({ get: (name) => byName.get(name), all: providers })
  }
  /**
   * @since 0.1.0
   * @category layers
   */
  static readonly layerFrom = (providers: ReadonlyArray<Provider>): Layer.Layer<ProviderRegistry> =>
    Layer.succeed(ProviderRegistry, ProviderRegistry.make(providers))
}

/**
 * Where a path goes before any provider looks at the request.
 *
 * @since 0.1.0
 * @category models
 */
export type Classification =
  | { readonly _tag: "Control"; readonly provider: string | null; readonly reason: string }
  | { readonly _tag: "Provider"; readonly provider: Provider; readonly match: RouteMatch }

const PREFIX = "/extensions/"

/**
 * ROUTING.md §2: only `/extensions/<provider>/…` is routed, never `…/setup/` or `…/link/`; `-` becomes `_` in the
 * provider; unknown providers, and paths that are not one of the provider's webhook paths, are `Control`.
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (path: string, registry: ProviderRegistry["Type"]): Classification => {
  const q = path.indexOf("?")
  const bare = q === -1 ? path : path.slice(0, q)
  if (!bare.startsWith(PREFIX)) return { _tag: "Control", provider: null, reason: "not an /extensions/ path" }
  if (bare.endsWith("/setup/") || bare.endsWith("/link/")) {
    return { _tag: "Control", provider: null, reason: "setup or link path" }
  }
  const afterPrefix = bare.slice(PREFIX.length)
  const slash = afterPrefix.indexOf("/")
  const segment = slash === -1 ? afterPrefix : afterPrefix.slice(0, slash)
  const name = segment.replaceAll("-", "_")
  if (name === "") return { _tag: "Control", provider: null, reason: "empty provider" }
  const provider = registry.get(name)
  if (provider === undefined) return { _tag: "Control", provider: name, reason: "unknown provider" }
  const match = slash === -1 ? undefined : provider.match(afterPrefix.slice(slash + 1))
  if (match === undefined) return { _tag: "Control", provider: name, reason: "not a webhook path" }
  return { _tag: "Provider", provider, match }
}
