/**
 * The directory (integrations, organizations, their links, regions), the webhook request and response, and the
 * route decision.
 *
 * @since 0.1.0
 */
import { Either, Encoding, Schema } from "effect"
import { IntegrationId, OrganizationId, RegionName } from "./Ids.js"

/**
 * @since 0.1.0
 * @category models
 */
export const IntegrationStatus = Schema.Literal("active", "disabled", "pending_deletion")
/**
 * @since 0.1.0
 * @category models
 */
export type IntegrationStatus = typeof IntegrationStatus.Type

/**
 * @since 0.1.0
 * @category models
 */
export const LinkStatus = Schema.Literal("active", "disabled", "pending_deletion")
/**
 * @since 0.1.0
 * @category models
 */
export type LinkStatus = typeof LinkStatus.Type

/**
 * Secrets of one integration. In memory they are `Redacted`: they never print, log or serialize by accident.
 *
 * @since 0.1.0
 * @category models
 */
export const IntegrationMetadata = Schema.Struct({
  /** Jira Server token key, GitLab token secret, Azure DevOps `shared-secret`, per-integration GitHub secret. */
  webhookSecret: Schema.optional(Schema.Redacted(Schema.String)),
  /** Jira Cloud (Atlassian Connect) shared secret. */
  sharedSecret: Schema.optional(Schema.Redacted(Schema.String))
})
/**
 * @since 0.1.0
 * @category models
 */
export type IntegrationMetadata = typeof IntegrationMetadata.Type

/**
 * @since 0.1.0
 * @category models
 */
export class Integration extends Schema.Class<Integration>("Integration")({
  id: IntegrationId,
  provider: Schema.String,
  externalId: Schema.String,
  status: Schema.optionalWith(IntegrationStatus, { default: () => "active" }),
  metadata: Schema.optionalWith(IntegrationMetadata, { default: () => ({}) })
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export class Organization extends Schema.Class<Organization>("Organization")({
  id: OrganizationId,
  slug: Schema.String,
  region: RegionName
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export class OrganizationIntegration extends Schema.Class<OrganizationIntegration>("OrganizationIntegration")({
  organizationId: OrganizationId,
  integrationId: IntegrationId,
  status: Schema.optionalWith(LinkStatus, { default: () => "active" })
}) {}

/**
 * The fewest key bytes a region secret may decode to (the Standard Webhooks test vector's secret has 24).
 *
 * @since 0.2.0
 * @category models
 */
export const REGION_SECRET_MIN_BYTES = 24

/**
 * Whether `secret` is `whsec_` followed by valid base64 (`effect/Encoding`, one line) of at least
 * `REGION_SECRET_MIN_BYTES` bytes: the key the delivery signs with.
 *
 * @since 0.2.0
 * @category models
 */
export const isRegionSecret = (secret: string): boolean =>
  secret.startsWith("whsec_") &&
  // `Encoding.decodeBase64` skips line breaks; a secret is one line
  !/[\r\n]/.test(secret) &&
  Either.match(Encoding.decodeBase64(secret.slice("whsec_".length)), {
    onLeft: () => false,
    onRight: (key) => key.length >= REGION_SECRET_MIN_BYTES
  })

/**
 * A region's signing secret, `Redacted`: `whsec_` + base64 of at least 24 bytes (docs/interfaces.md). The one check of
 * that rule: the configuration file, `makeServer` and every `Directory` / `Region` decoded or constructed go through
 * it, so a secret that cannot sign is a configuration error, never a mailbox stalled at delivery time. Its message
 * never shows the value.
 *
 * @since 0.2.0
 * @category models
 */
export const RegionSecret = Schema.Redacted(
  Schema.String.pipe(Schema.filter(isRegionSecret, {
    identifier: "RegionSecret",
    message: () =>
      `a region secret is "whsec_" followed by valid base64 of at least ${REGION_SECRET_MIN_BYTES} bytes ` +
      "(the value is not shown)"
  }))
)

/**
 * A regional deployment. `secret` (Standard Webhooks format `whsec_<base64>`, see `RegionSecret`) signs every request
 * sent to it.
 *
 * @since 0.1.0
 * @category models
 */
export class Region extends Schema.Class<Region>("Region")({
  name: RegionName,
  url: Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "an http(s) URL" })),
  secret: Schema.optional(RegionSecret)
}) {}

/**
 * The JSON snapshot of the directory (the `directory` section of the configuration file).
 *
 * @since 0.1.0
 * @category models
 */
export class Directory extends Schema.Class<Directory>("Directory")({
  regions: Schema.optionalWith(Schema.Array(Region), { default: () => [] }),
  organizations: Schema.optionalWith(Schema.Array(Organization), { default: () => [] }),
  integrations: Schema.optionalWith(Schema.Array(Integration), { default: () => [] }),
  organizationIntegrations: Schema.optionalWith(Schema.Array(OrganizationIntegration), { default: () => [] })
}) {}

/**
 * Headers are lower-cased; a repeated header is joined with `, ` as Node does.
 *
 * @since 0.1.0
 * @category models
 */
export const Headers = Schema.Record({ key: Schema.String, value: Schema.String })
/**
 * @since 0.1.0
 * @category models
 */
export type Headers = typeof Headers.Type

/**
 * One webhook as it arrived: method, full path with query, lower-cased headers, the exact body bytes, and when it
 * was received (epoch milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export const WebhookRequest = Schema.Struct({
  method: Schema.String,
  path: Schema.String,
  headers: Headers,
  body: Schema.Uint8ArrayFromSelf,
  receivedAt: Schema.Number
})
/**
 * @since 0.1.0
 * @category models
 */
export type WebhookRequest = typeof WebhookRequest.Type

/**
 * Headers of an answer: lower-cased names to one value or, for a repeated header (several `Set-Cookie`), its values
 * in order, each written as a header of its own.
 *
 * @since 0.2.0
 * @category models
 */
export const ResponseHeaders = Schema.Record({
  key: Schema.String,
  value: Schema.Union(Schema.String, Schema.Array(Schema.String))
})
/**
 * @since 0.2.0
 * @category models
 */
export type ResponseHeaders = typeof ResponseHeaders.Type

/**
 * What cellgate answers. `body` is text or bytes (relayed region answers keep their bytes); a repeated header of a
 * relayed answer stays an array of values (`ResponseHeaders`).
 *
 * @since 0.1.0
 * @category models
 */
export const WebhookResponse = Schema.Struct({
  status: Schema.Int,
  headers: ResponseHeaders,
  body: Schema.Union(Schema.String, Schema.Uint8ArrayFromSelf)
})
/**
 * @since 0.1.0
 * @category models
 */
export type WebhookResponse = typeof WebhookResponse.Type

/**
 * @since 0.1.0
 * @category models
 */
export const EnqueueTarget = Schema.Struct({
  region: RegionName,
  mailbox: Schema.String,
  /** The mailbox's tenant (`Mailbox.tenant`); absent: `i:<the decision's integration id>`. */
  tenant: Schema.optional(Schema.String)
})
/**
 * @since 0.1.0
 * @category models
 */
export type EnqueueTarget = typeof EnqueueTarget.Type

/**
 * Answer on the control side: proxy to the configured control upstream, else 404.
 *
 * @since 0.1.0
 * @category models
 */
export class Control extends Schema.TaggedClass<Control>()("Control", {}) {}

/**
 * Answer now, at the edge.
 *
 * @since 0.1.0
 * @category models
 */
export class Respond extends Schema.TaggedClass<Respond>()("Respond", {
  status: Schema.Int,
  headers: Headers,
  body: Schema.String,
  reason: Schema.String
}) {}

/**
 * Proxy the live request synchronously to the first region (`first`, by name) or to all of them (`all`).
 * `onTransportFailure: "control"`: when no region answers (unreachable, timeout), the control side answers instead
 * of 502/504 (Jira Cloud's issue page, docs/routing.md#jira-cloud-forward-fallback).
 *
 * @since 0.1.0
 * @category models
 */
export class Forward extends Schema.TaggedClass<Forward>()("Forward", {
  regions: Schema.Array(RegionName),
  mode: Schema.Literal("first", "all"),
  onTransportFailure: Schema.optional(Schema.Literal("control"))
}) {}

/**
 * Store the request durably, one payload per target (one target per region), then answer 202.
 *
 * @since 0.1.0
 * @category models
 */
export class Enqueue extends Schema.TaggedClass<Enqueue>()("Enqueue", {
  provider: Schema.String,
  integrationId: Schema.optional(IntegrationId),
  targets: Schema.Array(EnqueueTarget)
}) {}

/**
 * Where the answer of a stored hybrid delivery goes (docs/routing.md#deadline-aware-hybrid): a Slack `response_url`, or a Discord
 * interaction (`PATCH <apiBaseUrl>/webhooks/<applicationId>/<token>/messages/@original`). The Discord `token` is a
 * credential of that one interaction: `Redacted` in memory.
 *
 * @since 0.2.0
 * @category models
 */
export const ReplyTarget = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("slack"), url: Schema.String }),
  Schema.Struct({
    kind: Schema.Literal("discord"),
    applicationId: Schema.String,
    token: Schema.Redacted(Schema.String),
    /** `providers.discord.apiBaseUrl` when the target was made; absent: `https://discord.com/api/v10`. */
    apiBaseUrl: Schema.optional(Schema.String)
  })
)
/**
 * @since 0.2.0
 * @category models
 */
export type ReplyTarget = typeof ReplyTarget.Type

/**
 * The answer the provider gets when the hybrid's live attempt does not answer in time (or fails).
 *
 * @since 0.2.0
 * @category models
 */
export const HybridFallback = Schema.Struct({
  status: Schema.Int,
  headers: Headers,
  body: Schema.String
})
/**
 * @since 0.2.0
 * @category models
 */
export type HybridFallback = typeof HybridFallback.Type

/**
 * The deadline-aware hybrid (docs/routing.md#deadline-aware-hybrid): forward live to `regions` (sorted by name; `first` or `all`) within
 * `budgetMs`; relay as `Forward` when they answer in time, else answer `fallback` once the request is stored (one
 * payload per region in mailbox `Mailbox.name(mailboxPrefix, region, integrationId)`, with `replyTarget`).
 * `store: false` (e.g. an options-load) is never stored: past the budget it is just `fallback`. `dedupe`: an event
 * key accepted in the last `ttlMs` by any process is answered 200 and dropped.
 *
 * @since 0.2.0
 * @category models
 */
export class Hybrid extends Schema.TaggedClass<Hybrid>()("Hybrid", {
  regions: Schema.Array(RegionName),
  mode: Schema.Literal("first", "all"),
  budgetMs: Schema.Number,
  provider: Schema.String,
  integrationId: IntegrationId,
  mailboxPrefix: Schema.String,
  fallback: HybridFallback,
  store: Schema.Boolean,
  replyTarget: Schema.NullOr(ReplyTarget),
  dedupe: Schema.NullOr(Schema.Struct({
    key: Schema.String,
    ttlMs: Schema.Number,
    /** The request is a retry (Slack: `X-Slack-Retry-Num`): only a retry of an accepted key is dropped. Absent: true. */
    retry: Schema.optional(Schema.Boolean)
  }))
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export const RouteDecision = Schema.Union(Control, Respond, Forward, Enqueue, Hybrid)
/**
 * @since 0.1.0
 * @category models
 */
export type RouteDecision = typeof RouteDecision.Type

/**
 * @since 0.1.0
 * @category constructors
 */
export const control: RouteDecision = new Control()

/**
 * @since 0.1.0
 * @category constructors
 */
export const respond = (status: number, reason: string, body = "", headers: Headers = {}): Respond =>
  new Respond({ status, headers, body, reason }, { disableValidation: true })

/**
 * A `Respond` with cellgate's JSON error body `{"error","message"}`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const respondError = (status: number, error: string, message: string): Respond =>
  respond(status, error, JSON.stringify({ error, message }), { "content-type": "application/json" })

/**
 * The routing of one request with what led to it: the decision plus the integration, organizations and regions it
 * was made from (what `cellgate explain` prints and what the logs carry).
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteOutcome {
  readonly provider: string | null
  readonly decision: RouteDecision
  readonly reason: string
  readonly integration: Integration | null
  readonly organizations: ReadonlyArray<OrganizationId>
  readonly regions: ReadonlyArray<RegionName>
  /**
   * A provider's own log event for this request (e.g. `jira_server.no_integration` with the reason): `Gateway`'s
   * `handle` writes it as the request's one log line, with the webhook's fields added, instead of a second line.
   */
  readonly event?: { readonly message: string; readonly fields: Readonly<Record<string, unknown>> }
}
