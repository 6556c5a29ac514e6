/**
 * What a provider is, the ports it routes with, and classification of a path (docs/routing.md#classification).
 *
 * A provider is a value: its name, the webhook paths it routes, and a `route` program over the ports it is given
 * (`Ports`: looked up once, when `Gateway.layer` is built, never per request). Adding a provider is adding a module
 * and an entry in the registry (`ProviderRegistry`).
 *
 * @since 0.1.0
 */
import type { Effect, Redacted } from "effect"
import { Context, Option } from "effect"
import type { RouteOutcome, WebhookRequest } from "./Domain.js"
import type { RegionNotFound, StoreUnavailable } from "./Errors.js"
import type { IntegrationRepo } from "./IntegrationRepo.js"
import type { OrgRepo } from "./OrgRepo.js"
import type { RegionDirectory } from "./RegionDirectory.js"
import type { VolumeGate } from "./VolumeGate.js"

/**
 * App-level provider secrets (`providers.<p>.webhookSecret` of the configuration, e.g. the GitHub App secret).
 * Defaults to none configured. Read once, when `Gateway.layer` is built.
 *
 * @since 0.1.0
 * @category tags
 */
export class ProviderSecrets extends Context.Reference<ProviderSecrets>()("@cellgate/core/ProviderSecrets", {
  defaultValue: (): {
    readonly webhookSecret: (provider: string) => Option.Option<Redacted.Redacted<string>>
    /** `providers.slack` (docs/routing.md#slack); absent keys take `Slack.settings`' defaults. */
    readonly slack?: SlackOptions | undefined
    /** `providers.discord` (docs/routing.md#discord); absent keys take `Discord.settings`' defaults. */
    readonly discord?: DiscordOptions | undefined
  } => ({ webhookSecret: () => none })
}) {}

/**
 * `providers.slack` of the configuration. No `signingSecret`: every Slack webhook path answers 401.
 *
 * @since 0.2.0
 * @category models
 */
export interface SlackOptions {
  readonly signingSecret?: Redacted.Redacted<string> | undefined
  readonly syncBudgetMs?: number | undefined
  readonly replyHosts?: ReadonlyArray<string> | undefined
}

/**
 * `providers.discord` of the configuration. No `publicKey` (hex): every Discord interaction answers 401.
 *
 * @since 0.2.0
 * @category models
 */
export interface DiscordOptions {
  readonly publicKey?: string | undefined
  readonly syncBudgetMs?: number | undefined
  readonly apiBaseUrl?: string | undefined
  readonly replyHosts?: ReadonlyArray<string> | undefined
}

const none: Option.Option<never> = Option.none()

/**
 * The ports a provider routes with, given to `route` by the gateway (which looked them up once).
 *
 * @since 0.2.0
 * @category models
 */
export interface Ports {
  readonly integrations: IntegrationRepo["Type"]
  readonly organizations: OrgRepo["Type"]
  readonly regions: RegionDirectory["Type"]
  readonly volumeGate: VolumeGate["Type"]
  readonly secrets: ProviderSecrets["Type"]
  /**
   * Logs, once per provider (per gateway), that a provider routes without verification because no secret is
   * configured; `key` names the missing setting.
   */
  readonly warnUnverified: (provider: string, key: string) => Effect.Effect<void>
}

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
  /**
   * `rest` is the path after `/extensions/<provider>/` (or after `prefix`), without the query. `undefined`: not a
   * webhook path.
   */
  readonly match: (rest: string) => RouteMatch | undefined
  /**
   * A path prefix outside `/extensions/` that this provider claims whole (`/plugins/`, docs/routing.md#plugin-paths): every path
   * under it is classified to this provider, and `match` gets the path after the prefix. A provider with a prefix
   * is not reachable under `/extensions/<name>/`.
   */
  readonly prefix?: string
  readonly route: (
    request: WebhookRequest,
    match: RouteMatch,
    ports: Ports
  ) => Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable>
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
 * Where a path goes before any provider looks at the request.
 *
 * @since 0.1.0
 * @category models
 */
export type Classification =
  | { readonly _tag: "Control"; readonly provider: string | null; readonly reason: string }
  | { readonly _tag: "Provider"; readonly provider: Provider; readonly match: RouteMatch }

/**
 * What classification reads of a registry: the providers by name, and all of them (the `ProviderRegistry`
 * service's shape, declared here so that a provider's module does not depend on the registry's).
 *
 * @since 0.2.0
 * @category models
 */
export interface Registry {
  readonly get: (name: string) => Provider | undefined
  readonly all: ReadonlyArray<Provider>
}

const PREFIX = "/extensions/"

/** The providers of a registry that claim a prefix (`Provider.prefix`), found once per registry. */
const claimants = new WeakMap<Registry, ReadonlyArray<Provider>>()

const claimantOf = (bare: string, registry: Registry): Provider | undefined => {
  let list = claimants.get(registry)
  if (list === undefined) {
    list = registry.all.filter((p) => p.prefix !== undefined && p.prefix.startsWith("/") && p.prefix.endsWith("/"))
    claimants.set(registry, list)
  }
  for (const p of list) if (bare.startsWith(p.prefix!)) return p
  return undefined
}

/**
 * docs/routing.md#classification: only `/extensions/<provider>/…` is routed, never `…/setup/` or `…/link/`; `-` becomes `_` in the
 * provider; unknown providers, and paths that are not one of the provider's webhook paths, are `Control`. A path
 * under a prefix a provider claims (`Provider.prefix`: `/plugins/`, docs/routing.md#plugin-paths) goes to that provider the same way: one of
 * its webhook paths, else `Control`.
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (path: string, registry: Registry): Classification => {
  const q = path.indexOf("?")
  const bare = q === -1 ? path : path.slice(0, q)
  if (!bare.startsWith(PREFIX)) {
    const claimant = claimantOf(bare, registry)
    if (claimant === undefined) return { _tag: "Control", provider: null, reason: "not an /extensions/ path" }
    return matched(claimant, bare.slice(claimant.prefix!.length))
  }
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
  if (slash === -1 || provider.prefix !== undefined) {
    return { _tag: "Control", provider: name, reason: "not a webhook path" }
  }
  return matched(provider, afterPrefix.slice(slash + 1))
}

const matched = (provider: Provider, rest: string): Classification => {
  const match = provider.match(rest)
  if (match === undefined) return { _tag: "Control", provider: provider.name, reason: "not a webhook path" }
  return { _tag: "Provider", provider, match }
}
