/**
 * The durable outbox port (`docs/outbox.md`): its tag, its models (Schema: they cross the database and the CLI's
 * `--json`), the in-process wake-up every store shares (`makeWakeSignal`), and the memory outbox (`layerMemory`).
 *
 * An enqueue wakes the delivery worker of its own process: every store notifies its wake signal once its enqueue is
 * durable, and the worker waits on the same store (`awaitWork`), so nothing has to be shared by hand.
 *
 * @since 0.2.0
 */
import type { Effect as Eff } from "effect"
import { Context, Deferred, Effect, Exit, FiberId, Layer, Order, Schema } from "effect"
import { ReplyTarget } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { LeaseLost } from "./Errors.js"
import { IntegrationId, RegionName } from "./Ids.js"
import * as Mailbox from "./Mailbox.js"

// -------------------------------------------------------------------------------------------------------------------
// Models
// -------------------------------------------------------------------------------------------------------------------

/**
 * A payload to store: one webhook for one region.
 *
 * @since 0.1.0
 * @category models
 */
export const NewPayload = Schema.Struct({
  mailbox: Schema.String,
  provider: Schema.String,
  region: RegionName,
  integrationId: Schema.NullOr(IntegrationId),
  method: Schema.String,
  /** With the query. */
  path: Schema.String,
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  /** The exact bytes received. */
  body: Schema.Uint8ArrayFromSelf,
  receivedAt: Schema.Number,
  /** Stable across retries and replays: the `x-cellgate-delivery-id` header. */
  deliveryId: Schema.String,
  /**
   * Where the answer of the delivery goes (a stored hybrid request, docs/routing.md#deadline-aware-hybrid): after the first delivery of
   * the webhook (by completion) with a 2xx answer that has a body, `Delivery` sends it there once (`claimReply`).
   * Absent or `null`: none.
   */
  replyTarget: Schema.optional(Schema.NullOr(ReplyTarget)),
  /**
   * The W3C `traceparent` of the webhook's ingest span (Tracing.ts), stored with the payload so that its delivery
   * attempts join the webhook's trace in any process, after any restart. Absent or `null`: not traced.
   */
  traceContext: Schema.optional(Schema.NullOr(Schema.String)),
  /**
   * The mailbox's tenant, what fair claims share a worker's slots by (docs/routing.md#fair-adaptive-delivery). Absent
   * or `null`: `Mailbox.tenantOf` (`i:<integration id>`). A mailbox row keeps the tenant of its first payload.
   */
  tenant: Schema.optional(Schema.NullOr(Schema.String))
})
/**
 * @since 0.1.0
 * @category models
 */
export type NewPayload = typeof NewPayload.Type

/**
 * A payload in the outbox.
 *
 * @since 0.1.0
 * @category models
 */
export const StoredPayload = Schema.Struct({
  ...NewPayload.fields,
  id: Schema.Number,
  /**
   * The payload's number in its mailbox (`x-cellgate-sequence`), assigned in the enqueue's transaction from a
   * per-mailbox counter that outlives the mailbox row: 1, 2, 3, … in enqueue order, kept on retries, dead letters and
   * replays (docs/routing.md#fair-adaptive-delivery).
   */
  sequence: Schema.Number,
  attempts: Schema.Number,
  nextAttemptAt: Schema.Number,
  lastError: Schema.NullOr(Schema.String)
})
/**
 * @since 0.1.0
 * @category models
 */
export type StoredPayload = typeof StoredPayload.Type

/**
 * A payload that failed for good, with the last answer.
 *
 * @since 0.1.0
 * @category models
 */
export const DeadLetter = Schema.Struct({
  ...StoredPayload.fields,
  deadAt: Schema.Number,
  /** `max_attempts`, `max_age` or `permanent_failure`. */
  reason: Schema.String,
  lastStatus: Schema.NullOr(Schema.Number),
  /** The start of the region's last answer. */
  lastBody: Schema.NullOr(Schema.String)
})
/**
 * @since 0.1.0
 * @category models
 */
export type DeadLetter = typeof DeadLetter.Type

/**
 * One mailbox's backlog (`cellgate mailboxes`).
 *
 * @since 0.1.0
 * @category models
 */
export const MailboxInfo = Schema.Struct({
  mailbox: Schema.String,
  region: RegionName,
  /** `i:<integration id>` or `o:<organization id>` (`Mailbox.tenantOf`). */
  tenant: Schema.String,
  depth: Schema.Number,
  oldestReceivedAt: Schema.NullOr(Schema.Number),
  nextAttemptAt: Schema.Number,
  leasedBy: Schema.NullOr(Schema.String),
  leaseUntil: Schema.NullOr(Schema.Number)
})
/**
 * @since 0.1.0
 * @category models
 */
export type MailboxInfo = typeof MailboxInfo.Type

/**
 * A mailbox that `claim` leased, with its tenant (the worker counts what it holds of each tenant).
 *
 * @since 0.3.0
 * @category models
 */
export const Claimed = Schema.Struct({ mailbox: Schema.String, tenant: Schema.String })
/**
 * @since 0.3.0
 * @category models
 */
export type Claimed = typeof Claimed.Type

/**
 * What `claim` is asked for.
 *
 * @since 0.3.0
 * @category models
 */
export interface ClaimOptions {
  readonly owner: string
  readonly now: number
  readonly leaseMs: number
  /** At most this many mailboxes. */
  readonly limit: number
  /**
   * Tenant-fair claims (docs/routing.md#fair-adaptive-delivery; `delivery.fairShare`): with `held` counted in, a
   * tenant's mailboxes beyond this many go only after every due mailbox of a tenant still within it. `0` or absent:
   * plain oldest-due-first.
   */
  readonly fairShare?: number | undefined
  /** How many mailboxes `owner` holds (claimed or being drained) of each tenant right now. */
  readonly held?: ReadonlyMap<string, number> | undefined
}

/**
 * Who holds a mailbox, and when: every write of a drain carries it and is refused (`LeaseLost`) once the lease has
 * passed to someone else or run out.
 *
 * @since 0.1.0
 * @category models
 */
export const Lease = Schema.Struct({
  mailbox: Schema.String,
  owner: Schema.String,
  now: Schema.Number
})
/**
 * @since 0.1.0
 * @category models
 */
export type Lease = typeof Lease.Type

// -------------------------------------------------------------------------------------------------------------------
// Tag
// -------------------------------------------------------------------------------------------------------------------

/**
 * The durable outbox. Times are epoch ms from Effect's `Clock`, passed in, never the database's clock.
 *
 * @since 0.1.0
 * @category tags
 */
export class Outbox extends Context.Tag("@cellgate/core/Outbox")<Outbox, {
  /**
   * Stores all payloads atomically; returns only once durable. Concurrent calls may share one commit. Once durable,
   * wakes this process's `awaitWork` waiters.
   */
  readonly enqueue: (payloads: ReadonlyArray<NewPayload>) => Eff.Effect<void, StoreUnavailable>
  /**
   * Waits until an enqueue of this process (to this outbox) is durable, or `maxWaitMs` has passed (Effect's
   * `Clock`). An enqueue made while nobody waited is not lost: the next `awaitWork` returns at once. Other processes'
   * enqueues are not seen (their workers poll). Implement it with `makeWakeSignal`.
   */
  readonly awaitWork: (maxWaitMs: number) => Eff.Effect<void>
  /**
   * Leases up to `limit` due, unleased (or expired) mailboxes to `owner` until `now + leaseMs`, in claim order
   * (`claimOrder`): oldest due first, and with `fairShare` the tenant-fair order.
   */
  readonly claim: (options: ClaimOptions) => Eff.Effect<ReadonlyArray<Claimed>, StoreUnavailable>
  /** Extends a held lease; fails with `LeaseLost` when it is no longer held. */
  readonly renew: (lease: Lease, leaseMs: number) => Eff.Effect<void, LeaseLost | StoreUnavailable>
  /** The first `limit` payloads of a mailbox in id order. */
  readonly head: (mailbox: string, limit: number) => Eff.Effect<ReadonlyArray<StoredPayload>, StoreUnavailable>
  /** Delivered: the payload leaves the outbox. */
  readonly complete: (lease: Lease, id: number) => Eff.Effect<void, LeaseLost | StoreUnavailable>
  /** Failed, retryable: attempts + 1, the error, and the payload's own next attempt time. */
  readonly retry: (
    lease: Lease,
    id: number,
    options: { readonly nextAttemptAt: number; readonly error: string }
  ) => Eff.Effect<void, LeaseLost | StoreUnavailable>
  /** Failed for good: moves the payload to the dead letters with the last answer. */
  readonly deadLetter: (
    lease: Lease,
    id: number,
    options: { readonly reason: string; readonly lastStatus: number | null; readonly lastBody: string | null }
  ) => Eff.Effect<void, LeaseLost | StoreUnavailable>
  /**
   * Gives the mailbox back: due again at `nextAttemptAt`, or removed when it has no payloads left (guarded on the
   * row's own depth, so a concurrent enqueue is never orphaned). A lease already lost is not an error here.
   */
  readonly release: (lease: Lease, nextAttemptAt: number) => Eff.Effect<void, StoreUnavailable>
  /** Moves dead letters back to the tail of their mailboxes (new id, same delivery id); `"all"` or ids. */
  readonly replay: (ids: "all" | ReadonlyArray<number>, now: number) => Eff.Effect<number, StoreUnavailable>
  readonly deadLetters: Eff.Effect<ReadonlyArray<DeadLetter>, StoreUnavailable>
  readonly mailboxes: Eff.Effect<ReadonlyArray<MailboxInfo>, StoreUnavailable>
  /**
   * The once-only reply record (docs/routing.md#deadline-aware-hybrid): `true` for the first caller with this delivery id (it sends the
   * reply), `false` for every later one, in any process sharing the store. A record is never removed.
   */
  readonly claimReply: (deliveryId: string, now: number) => Eff.Effect<boolean, StoreUnavailable>
  /**
   * An event id seen by the fleet (Slack event retries): `true` when no record of `key` is in force at `now`, and
   * the record is then written to last until `until`; `false` (nothing written) when one is — first writer wins
   * across processes. Expired records are removed as new ones are written.
   */
  readonly remember: (
    key: string,
    options: { readonly now: number; readonly until: number }
  ) => Eff.Effect<boolean, StoreUnavailable>
  /** Removes the record of `key` (an event that was remembered but then not accepted: the store failed). */
  readonly forget: (key: string) => Eff.Effect<void, StoreUnavailable>
}>() {}

// -------------------------------------------------------------------------------------------------------------------
// Wake-up
// -------------------------------------------------------------------------------------------------------------------

/**
 * The in-process wake-up behind `Outbox.awaitWork`: a store calls `notify` once an enqueue is durable and passes
 * `awaitWork` through as the port's method.
 *
 * @since 0.2.0
 * @category models
 */
export interface WakeSignal {
  /** Wakes every current waiter; with none, the next `awaitWork` returns at once. */
  readonly notify: Eff.Effect<void>
  readonly awaitWork: (maxWaitMs: number) => Eff.Effect<void>
}

/**
 * A `WakeSignal` (synchronously; see `makeWakeSignal`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const unsafeMakeWakeSignal = (): WakeSignal => {
  // an enqueue that no waiter saw yet: the next wait returns at once (a notify between a worker's claim and its wait
  // is not lost)
  let pending = false
  let waiters: Deferred.Deferred<void> | undefined
  const notify = Effect.sync(() => {
    pending = true
    if (waiters !== undefined) {
      const woken = waiters
      waiters = undefined
      Deferred.unsafeDone(woken, Exit.void)
    }
  })
  const clear = Effect.sync(() => {
    pending = false
  })
  const awaitWork = (maxWaitMs: number): Eff.Effect<void> =>
    Effect.suspend(() => {
      if (pending) {
        pending = false
        return Effect.void
      }
      const woken = waiters ??= Deferred.unsafeMake<void>(FiberId.none)
      return Effect.raceFirst(Deferred.await(woken), Effect.sleep(maxWaitMs)).pipe(Effect.ensuring(clear))
    })
  return { notify, awaitWork }
}

/**
 * A fresh `WakeSignal`, for a store implementation (one per outbox instance).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeWakeSignal: Eff.Effect<WakeSignal> = Effect.sync(unsafeMakeWakeSignal)

// -------------------------------------------------------------------------------------------------------------------
// Claim order
// -------------------------------------------------------------------------------------------------------------------

/**
 * A due, unleased mailbox that `claim` may take.
 *
 * @since 0.3.0
 * @category models
 */
export interface Candidate {
  readonly mailbox: string
  readonly tenant: string
  readonly nextAttemptAt: number
}

/**
 * The claim order every store implements (docs/routing.md#fair-adaptive-delivery), as a pure function: the first
 * `limit` of `candidates` (due, unleased) in that order.
 *
 * - Without `fairShare` (or `0`): oldest due first (`nextAttemptAt`, then the mailbox's name).
 * - With it: a candidate's *rank* is what `held` says the owner holds of its tenant plus its place among its tenant's
 *   candidates (1 for the oldest due). Candidates ranked within `fairShare` come first, oldest due first across
 *   tenants; then the rest, by rank (round robin over the tenants), then oldest due. So a worker takes more than its
 *   share of one tenant only when no other tenant has a mailbox due.
 *
 * @since 0.3.0
 * @category policy
 */
export const claimOrder = (
  candidates: ReadonlyArray<Candidate>,
  options: Pick<ClaimOptions, "limit" | "fairShare" | "held">
): ReadonlyArray<Candidate> => {
  const byDue = [...candidates].sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || compareNames(a.mailbox, b.mailbox))
  const share = options.fairShare ?? 0
  if (share <= 0) return byDue.slice(0, Math.max(0, options.limit))
  const places = new Map<string, number>()
  const tiered = byDue.map((c, index) => {
    const place = (places.get(c.tenant) ?? 0) + 1
    places.set(c.tenant, place)
    const rank = (options.held?.get(c.tenant) ?? 0) + place
    return { c, tier: rank > share ? rank : 0, index }
  })
  tiered.sort((a, b) => a.tier - b.tier || a.index - b.index)
  return tiered.slice(0, Math.max(0, options.limit)).map((t) => t.c)
}

const compareNames = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

// -------------------------------------------------------------------------------------------------------------------
// Memory
// -------------------------------------------------------------------------------------------------------------------

interface MailboxRow {
  region: RegionName
  tenant: string
  depth: number
  nextAttemptAt: number
  leaseOwner: string | null
  leaseUntil: number | null
}

const byId = Order.mapInput(Order.number, (p: { readonly id: number }) => p.id)

/**
 * An outbox in memory, with the same semantics (ids, leases, ordering, dead letters, replay, wake-up) as the SQL
 * stores. Nothing survives the process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory = (): Outbox["Type"] => {
  let nextId = 0
  const payloads = new Map<number, StoredPayload>()
  const mailboxes = new Map<string, MailboxRow>()
  // the per-mailbox sequence counters: never removed, so a mailbox that empties and comes back counts on
  const sequences = new Map<string, number>()
  const dead = new Map<number, DeadLetter>()
  const replies = new Set<string>()
  const remembered = new Map<string, number>()
  const wake = unsafeMakeWakeSignal()

  const held = (lease: Lease): Eff.Effect<MailboxRow, LeaseLost> => {
    const row = mailboxes.get(lease.mailbox)
    return row !== undefined && row.leaseOwner === lease.owner && row.leaseUntil !== null &&
        row.leaseUntil >= lease.now
      ? Effect.succeed(row)
      : Effect.fail(new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner }))
  }

  const inMailbox = (lease: Lease, id: number): Eff.Effect<StoredPayload, LeaseLost> => {
    const p = payloads.get(id)
    return p !== undefined && p.mailbox === lease.mailbox
      ? Effect.succeed(p)
      : Effect.fail(new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner }))
  }

  /** Adds a payload at the tail of its mailbox; a replayed one keeps its `sequence`. */
  const add = (p: NewPayload, due: number, replayed?: number) => {
    const id = ++nextId
    let sequence = replayed
    if (sequence === undefined) {
      sequence = (sequences.get(p.mailbox) ?? 0) + 1
      sequences.set(p.mailbox, sequence)
    }
    const tenant = Mailbox.tenantOf(p)
    payloads.set(id, {
      mailbox: p.mailbox,
      provider: p.provider,
      region: p.region,
      integrationId: p.integrationId,
      method: p.method,
      path: p.path,
      headers: p.headers,
      body: p.body,
      receivedAt: p.receivedAt,
      deliveryId: p.deliveryId,
      replyTarget: p.replyTarget ?? null,
      traceContext: p.traceContext ?? null,
      tenant,
      id,
      sequence,
      attempts: 0,
      nextAttemptAt: due,
      lastError: null
    })
    const row = mailboxes.get(p.mailbox)
    if (row === undefined) {
      mailboxes.set(p.mailbox, {
        region: p.region,
        tenant,
        depth: 1,
        nextAttemptAt: due,
        leaseOwner: null,
        leaseUntil: null
      })
    } else row.depth += 1
  }

  return Outbox.of({
    enqueue: (batch) =>
      batch.length === 0 ? Effect.void : Effect.zipRight(
        Effect.sync(() => {
          for (const p of batch) add(p, p.receivedAt)
        }),
        wake.notify
      ),
    awaitWork: wake.awaitWork,
    claim: (options) =>
      Effect.sync(() => {
        const { leaseMs, now, owner } = options
        const candidates: Array<Candidate> = []
        for (const [mailbox, r] of mailboxes) {
          if (r.nextAttemptAt <= now && (r.leaseUntil === null || r.leaseUntil < now)) {
            candidates.push({ mailbox, tenant: r.tenant, nextAttemptAt: r.nextAttemptAt })
          }
        }
        return claimOrder(candidates, options).map((c): Claimed => {
          const r = mailboxes.get(c.mailbox)!
          r.leaseOwner = owner
          r.leaseUntil = now + leaseMs
          return { mailbox: c.mailbox, tenant: c.tenant }
        })
      }),
    renew: (lease, leaseMs) =>
      Effect.map(held(lease), (row) => {
        row.leaseUntil = lease.now + leaseMs
      }),
    head: (mailbox, limit) =>
      Effect.sync(() =>
        Array.from(payloads.values())
          .filter((p) => p.mailbox === mailbox)
          .sort(byId)
          .slice(0, limit)
      ),
    complete: (lease, id) =>
      Effect.gen(function*() {
        const row = yield* held(lease)
        yield* inMailbox(lease, id)
        payloads.delete(id)
        row.depth -= 1
      }),
    retry: (lease, id, { error, nextAttemptAt }) =>
      Effect.gen(function*() {
        yield* held(lease)
        const p = yield* inMailbox(lease, id)
        payloads.set(id, { ...p, attempts: p.attempts + 1, nextAttemptAt, lastError: error })
      }),
    deadLetter: (lease, id, { lastBody, lastStatus, reason }) =>
      Effect.gen(function*() {
        const row = yield* held(lease)
        const p = yield* inMailbox(lease, id)
        payloads.delete(id)
        row.depth -= 1
        dead.set(id, { ...p, deadAt: lease.now, reason, lastStatus, lastBody })
      }),
    release: (lease, nextAttemptAt) =>
      Effect.sync(() => {
        const row = mailboxes.get(lease.mailbox)
        if (row === undefined || row.leaseOwner !== lease.owner) return
        if (row.depth === 0) {
          mailboxes.delete(lease.mailbox)
          return
        }
        row.nextAttemptAt = nextAttemptAt
        row.leaseOwner = null
        row.leaseUntil = null
      }),
    replay: (ids, now) =>
      Effect.suspend(() => {
        const chosen = ids === "all"
          ? Array.from(dead.keys()).sort(Order.number)
          : Array.from(new Set(ids)).filter((id) => dead.has(id)).sort(Order.number)
        for (const id of chosen) {
          const d = dead.get(id)!
          dead.delete(id)
          add(d, now, d.sequence)
        }
        return chosen.length === 0 ? Effect.succeed(0) : Effect.as(wake.notify, chosen.length)
      }),
    deadLetters: Effect.sync(() => Array.from(dead.values()).sort(byId)),
    claimReply: (deliveryId) =>
      Effect.sync(() => {
        if (replies.has(deliveryId)) return false
        replies.add(deliveryId)
        return true
      }),
    remember: (key, { now, until }) =>
      Effect.sync(() => {
        // insertion order is (nearly) expiry order: drop expired records from the front
        for (const [k, expires] of remembered) {
          if (expires > now) break
          remembered.delete(k)
        }
        const expires = remembered.get(key)
        if (expires !== undefined && expires <= now) remembered.delete(key)
        if (remembered.has(key)) return false
        remembered.set(key, until)
        return true
      }),
    forget: (key) =>
      Effect.sync(() => {
        remembered.delete(key)
      }),
    mailboxes: Effect.sync(() =>
      Array.from(mailboxes.entries())
        .sort(([a], [b]) => compareNames(a, b))
        .map(([mailbox, r]): MailboxInfo => {
          let oldest: number | null = null
          for (const p of payloads.values()) {
            if (p.mailbox === mailbox && (oldest === null || p.receivedAt < oldest)) oldest = p.receivedAt
          }
          return {
            mailbox,
            region: r.region,
            tenant: r.tenant,
            depth: r.depth,
            oldestReceivedAt: oldest,
            nextAttemptAt: r.nextAttemptAt,
            leasedBy: r.leaseOwner,
            leaseUntil: r.leaseUntil
          }
        })
    )
  })
}

/**
 * The outbox in memory (one per layer build; see `makeMemory`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Outbox> = Layer.sync(Outbox, makeMemory)
