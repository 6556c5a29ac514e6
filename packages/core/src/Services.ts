/**
 * The services the core runs on. Each is a `Context.Tag`; the layers live in `@cellgate/adapters` (memory, SQLite,
 * PostgreSQL, HTTP). Every method has `R = never`. A store that cannot be read or written fails with the typed
 * `StoreUnavailable` (answered 503 `store_unavailable`, `Retry-After: 5`), on the directory reads as on the outbox; a
 * defect is a bug (500).
 *
 * @since 0.1.0
 */
import type { Effect, Redacted } from "effect"
import { Context, Option } from "effect"
import type { Directory, Integration, Organization, Region, WebhookRequest, WebhookResponse } from "./Domain.js"
import type { LeaseLost, RegionTransportError, StoreUnavailable } from "./Errors.js"
import type { IntegrationId, OrganizationId, RegionName } from "./Ids.js"

/**
 * Integrations, by id or by (provider, external id). Returns any status: callers match only `active` ones. A store
 * that cannot be read fails with `StoreUnavailable` (an implementation that cannot fail keeps `never`).
 *
 * @since 0.1.0
 * @category services
 */
export class IntegrationRepo extends Context.Tag("@cellgate/core/IntegrationRepo")<IntegrationRepo, {
  readonly byId: (id: IntegrationId) => Effect.Effect<Option.Option<Integration>, StoreUnavailable>
  readonly byExternalId: (
    provider: string,
    externalId: string
  ) => Effect.Effect<Option.Option<Integration>, StoreUnavailable>
}>() {}

/**
 * Organizations and their links to integrations. A store that cannot be read fails with `StoreUnavailable`.
 *
 * @since 0.1.0
 * @category services
 */
export class OrgRepo extends Context.Tag("@cellgate/core/OrgRepo")<OrgRepo, {
  /** Ids of the organizations with an `active` link to the integration (any order, possibly repeated). */
  readonly activeOrganizationIds: (
    integrationId: IntegrationId
  ) => Effect.Effect<ReadonlyArray<OrganizationId>, StoreUnavailable>
  /** The organizations that exist among `ids` (missing ids are skipped; any order). */
  readonly byIds: (ids: ReadonlyArray<OrganizationId>) => Effect.Effect<ReadonlyArray<Organization>, StoreUnavailable>
}>() {}

/**
 * The regions cellgate delivers to. A store that cannot be read fails with `StoreUnavailable`.
 *
 * @since 0.1.0
 * @category services
 */
export class RegionDirectory extends Context.Tag("@cellgate/core/RegionDirectory")<RegionDirectory, {
  readonly byName: (name: RegionName) => Effect.Effect<Option.Option<Region>, StoreUnavailable>
  readonly all: Effect.Effect<ReadonlyArray<Region>, StoreUnavailable>
}>() {}

/**
 * The per-integration hourly webhook counter behind mailbox bucketing (ROUTING.md §4). Kept in the store, so every
 * gateway process sees the same count.
 *
 * @since 0.1.0
 * @category services
 */
export class VolumeGate extends Context.Tag("@cellgate/core/VolumeGate")<VolumeGate, {
  /**
   * Counts one webhook for `key` at `now` (epoch ms) and tells whether bucketing is on: once more than `limit`
   * webhooks arrive in one fixed window of `windowMs`, bucketing stays on for `holdMs`. `switched` is true on the
   * call that turned it on. `count` (default 1) counts several webhooks at once (see `bufferedVolumeGate`).
   */
  readonly hit: (
    key: string,
    now: number,
    policy: VolumePolicy,
    count?: number
  ) => Effect.Effect<VolumeVerdict, StoreUnavailable>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface VolumePolicy {
  readonly limit: number
  readonly windowMs: number
  readonly holdMs: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface VolumeVerdict {
  readonly bucketed: boolean
  readonly switched: boolean
}

/**
 * A payload to store: one webhook for one region.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewPayload {
  readonly mailbox: string
  readonly provider: string
  readonly region: RegionName
  readonly integrationId: IntegrationId | null
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly receivedAt: number
  /** Stable across retries and replays: the `x-cellgate-delivery-id` header. */
  readonly deliveryId: string
}

/**
 * A payload in the outbox.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredPayload extends NewPayload {
  readonly id: number
  readonly attempts: number
  readonly nextAttemptAt: number
  readonly lastError: string | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DeadLetter extends StoredPayload {
  readonly deadAt: number
  readonly reason: string
  readonly lastStatus: number | null
  readonly lastBody: string | null
}

/**
 * One mailbox's backlog (`cellgate mailboxes`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MailboxInfo {
  readonly mailbox: string
  readonly region: RegionName
  readonly depth: number
  readonly oldestReceivedAt: number | null
  readonly nextAttemptAt: number
  readonly leasedBy: string | null
  readonly leaseUntil: number | null
}

/**
 * Who holds a mailbox, and when: every write of a drain carries it and is refused (`LeaseLost`) once the lease has
 * passed to someone else or run out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly mailbox: string
  readonly owner: string
  readonly now: number
}

/**
 * The durable outbox of `design/OUTBOX.md`. Times are epoch ms from Effect's `Clock`, passed in, never the
 * database's clock.
 *
 * @since 0.1.0
 * @category services
 */
export class Outbox extends Context.Tag("@cellgate/core/Outbox")<Outbox, {
  /** Stores all payloads atomically; returns only once durable. Concurrent calls may share one commit. */
  readonly enqueue: (payloads: ReadonlyArray<NewPayload>) => Effect.Effect<void, StoreUnavailable>
  /** Leases up to `limit` due, unleased (or expired) mailboxes to `owner` until `now + leaseMs`. */
  readonly claim: (
    options: { readonly owner: string; readonly now: number; readonly leaseMs: number; readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<string>, StoreUnavailable>
  /** Extends a held lease; fails with `LeaseLost` when it is no longer held. */
  readonly renew: (lease: Lease, leaseMs: number) => Effect.Effect<void, LeaseLost | StoreUnavailable>
  /** The first `limit` payloads of a mailbox in id order. */
  readonly head: (mailbox: string, limit: number) => Effect.Effect<ReadonlyArray<StoredPayload>, StoreUnavailable>
  /** Delivered: the payload leaves the outbox. */
  readonly complete: (lease: Lease, id: number) => Effect.Effect<void, LeaseLost | StoreUnavailable>
  /** Failed, retryable: attempts + 1, the error, and the payload's own next attempt time. */
  readonly retry: (
    lease: Lease,
    id: number,
    options: { readonly nextAttemptAt: number; readonly error: string }
  ) => Effect.Effect<void, LeaseLost | StoreUnavailable>
  /** Failed for good: moves the payload to the dead letters with the last answer. */
  readonly deadLetter: (
    lease: Lease,
    id: number,
    options: { readonly reason: string; readonly lastStatus: number | null; readonly lastBody: string | null }
  ) => Effect.Effect<void, LeaseLost | StoreUnavailable>
  /**
   * Gives the mailbox back: due again at `nextAttemptAt`, or removed when it has no payloads left (guarded on the
   * row's own depth, so a concurrent enqueue is never orphaned). A lease already lost is not an error here.
   */
  readonly release: (lease: Lease, nextAttemptAt: number) => Effect.Effect<void, StoreUnavailable>
  /** Moves dead letters back to the tail of their mailboxes (new id, same delivery id); `"all"` or ids. */
  readonly replay: (ids: "all" | ReadonlyArray<number>, now: number) => Effect.Effect<number, StoreUnavailable>
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, StoreUnavailable>
  readonly mailboxes: Effect.Effect<ReadonlyArray<MailboxInfo>, StoreUnavailable>
}>() {}

/**
 * A request cellgate sends to a region: the path (with query) is appended to the region's URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutgoingRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RegionResponse {
  readonly status: number
  /** Lower-cased; a repeated header (several `Set-Cookie`) is an array of its values in order. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string>>>
  /** The start of the answer: at most `maxAnswerBytes` when the client was given a cap. */
  readonly body: Uint8Array
  /** The answer was longer than `maxAnswerBytes`: `body` is its start only (the rest was not read). */
  readonly truncated?: boolean
}

/**
 * Sends one request to a region (delivery or synchronous forward). Redirects are not followed. Transport failures
 * (refused, reset, DNS, timeout after `timeoutMs`) are typed. A request is sent at most once: the region may have read
 * it, so a re-send is the caller's new attempt (its own `x-cellgate-attempt`), never the client's.
 *
 * @since 0.1.0
 * @category services
 */
export class RegionClient extends Context.Tag("@cellgate/core/RegionClient")<RegionClient, {
  readonly send: (
    region: Region,
    request: OutgoingRequest,
    options: {
      readonly timeoutMs: number
      /** Read at most this many bytes of the answer (the rest is not read: `truncated`). */
      readonly maxAnswerBytes?: number
    }
  ) => Effect.Effect<RegionResponse, RegionTransportError>
}>() {}

/**
 * What the control side answers for requests that are not routed to a region.
 *
 * @since 0.1.0
 * @category services
 */
export class ControlHandler extends Context.Tag("@cellgate/core/ControlHandler")<ControlHandler, {
  readonly handle: (request: WebhookRequest) => Effect.Effect<WebhookResponse>
}>() {}

/**
 * App-level provider secrets (`providers.<p>.webhookSecret` of the configuration, e.g. the GitHub App secret).
 * Defaults to none configured.
 *
 * @since 0.1.0
 * @category services
 */
export class ProviderSecrets extends Context.Reference<ProviderSecrets>()("@cellgate/core/ProviderSecrets", {
  defaultValue: (): {
    readonly webhookSecret: (provider: string) => Option.Option<Redacted.Redacted<string>>
  } => ({ webhookSecret: () => none })
}) {}

const none: Option.Option<never> = Option.none()

/**
 * Replaces the whole directory (regions, organizations, integrations, links) in one transaction.
 *
 * @since 0.1.0
 * @category services
 */
export class DirectoryStore extends Context.Tag("@cellgate/core/DirectoryStore")<DirectoryStore, {
  readonly importDirectory: (directory: Directory) => Effect.Effect<void, StoreUnavailable>
}>() {}

/**
 * Readiness of the store (`/readyz`): a real query succeeds, the migrations are at the latest version, and the store
 * can write. A write that failed (a full disk: `SQLITE_FULL`/`SQLITE_IOERR`, a PostgreSQL write error, an outage)
 * makes `check` fail until a later write succeeds — an `enqueue`, or the small write `check` itself then tries
 * (so that an instance taken out of rotation finds its way back without traffic).
 *
 * @since 0.1.0
 * @category services
 */
export class StoreHealth extends Context.Tag("@cellgate/core/StoreHealth")<StoreHealth, {
  readonly check: Effect.Effect<void, StoreUnavailable>
}>() {}

/**
 * Everything a store provides (the memory, SQLite and PostgreSQL layers alike).
 *
 * @since 0.1.0
 * @category models
 */
export type StoreServices =
  | IntegrationRepo
  | OrgRepo
  | RegionDirectory
  | DirectoryStore
  | VolumeGate
  | Outbox
  | StoreHealth
