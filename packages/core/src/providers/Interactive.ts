/**
 * What the interactive providers (Slack, Discord: answered within 3 s, the answer is what the user sees) share: the
 * reply-host rule and the `Hybrid` decision they return (docs/routing.md#deadline-aware-hybrid). The gateway interprets the decision.
 *
 * @since 0.2.0
 */
import type { HybridFallback, ReplyTarget } from "../Domain.js"
import { Hybrid } from "../Domain.js"
import type { IntegrationId, RegionName } from "../Ids.js"

/**
 * How long an accepted Slack event id is remembered for its retries (docs/routing.md#deadline-aware-hybrid): 10 minutes.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEDUPE_TTL_MS = 600_000

/**
 * The default synchronous budget of a hybrid forward (`providers.<p>.syncBudgetMs`).
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_SYNC_BUDGET_MS = 2000

const normalizeHost = (host: string): string => host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1")

/**
 * The hostname of an `http(s)` URL (WHATWG parsing, lower-case, IPv6 without brackets, no port), or `undefined` when
 * `url` is not an absolute `http:` / `https:` URL.
 *
 * @since 0.2.0
 * @category reply targets
 */
export const replyHost = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined
  const host = normalizeHost(parsed.hostname)
  return host === "" ? undefined : host
}

/**
 * Whether a reply target URL may be called: an `http(s)` URL whose hostname (compared without its port,
 * case-insensitively) is one of `hosts` (`providers.<p>.replyHosts`). A signed payload must never make the gateway
 * call an arbitrary URL (docs/routing.md#deadline-aware-hybrid).
 *
 * @since 0.2.0
 * @category reply targets
 */
export const replyHostAllowed = (url: string, hosts: ReadonlyArray<string>): boolean => {
  const host = replyHost(url)
  return host !== undefined && hosts.some((h) => normalizeHost(h) === host)
}

/**
 * A JSON answer made at the edge (`{"type":1}`, `{"challenge":…}`, a fallback).
 *
 * @since 0.2.0
 * @category constructors
 */
export const jsonFallback = (body: unknown): HybridFallback => ({
  status: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

/**
 * The `Hybrid` decision: the live forward to `regions` (sorted; `first` or `all`) within `budgetMs`, else `fallback`
 * and (when `store`) one stored payload per region in mailbox `<provider>:<region>:<integrationId>` with `replyTarget`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const hybrid = (options: {
  readonly provider: string
  readonly integrationId: IntegrationId
  readonly regions: ReadonlyArray<RegionName>
  readonly mode: "first" | "all"
  readonly budgetMs: number
  readonly fallback: HybridFallback
  readonly store: boolean
  readonly replyTarget: ReplyTarget | null
  readonly dedupe: { readonly key: string; readonly ttlMs: number; readonly retry?: boolean } | null
}): Hybrid =>
  new Hybrid({
    regions: options.regions,
    mode: options.mode,
    budgetMs: options.budgetMs,
    provider: options.provider,
    integrationId: options.integrationId,
    mailboxPrefix: options.provider,
    fallback: options.fallback,
    store: options.store,
    replyTarget: options.replyTarget,
    dedupe: options.dedupe
  }, { disableValidation: true })
