/**
 * Every core service in memory: the directory, the outbox (the semantics of `design/OUTBOX.md`), the volume gate, a
 * recording region client and the 404 control side. For tests, and for users who embed cellgate with their own data.
 * Nothing here survives the process.
 *
 * @since 0.1.0
 */
import type {
  Directory,
  Integration,
  NewPayload,
  Organization,
  OutgoingRequest,
  Region,
  RegionResponse
} from "@cellgate/core"
import {
  ControlHandler,
  controlNotFound,
  DirectoryStore,
  IntegrationRepo,
  LeaseLost,
  OrgRepo,
  Outbox,
  RegionClient,
  RegionDirectory,
  StoreHealth,
  VolumeGate,
  VolumeGates
} from "@cellgate/core"
import type { DeadLetter, Lease, MailboxInfo, StoredPayload, StoreServices } from "@cellgate/core"
import { Context, Effect, Layer, Option } from "effect"

interface DirectoryState {
  regions: Map<string, Region>
  organizations: Map<number, Organization>
  integrationsById: Map<number, Integration>
  integrationsByExternal: Map<string, Integration>
  /** integration id → organization ids with an active link */
  activeLinks: Map<number, Array<number>>
}

const externalKey = (provider: string, externalId: string) => `${provider}\u0000${externalId}`

const buildDirectory = (directory: Directory): DirectoryState => {
  const activeLinks = new Map<number, Array<number>>()
  for (const link of directory.organizationIntegrations) {
    if (link.status !== "active") continue
    const list = activeLinks.get(link.integrationId) ?? []
    list.push(link.organizationId)
    activeLinks.set(link.integrationId, list)
  }
  return {
    regions: new Map(directory.regions.map((r) => [r.name, r])),
    organizations: new Map(directory.organizations.map((o) => [o.id, o])),
    integrationsById: new Map(directory.integrations.map((i) => [i.id, i])),
    integrationsByExternal: new Map(directory.integrations.map((i) => [externalKey(i.provider, i.externalId), i])),
    activeLinks
  }
}

/**
 * `IntegrationRepo`, `OrgRepo`, `RegionDirectory` and `DirectoryStore` over one in-memory directory.
 *
 * @since 0.1.0
 * @category layers
 */
export const directoryLayer = (
  directory: Directory
): Layer.Layer<IntegrationRepo | OrgRepo | RegionDirectory | DirectoryStore> =>
  Layer.effectContext(Effect.sync(() => {
    let state = buildDirectory(directory)
    return Context.make(
      IntegrationRepo,
      IntegrationRepo.of({
        byId: (id) => Effect.sync(() => Option.fromNullable(state.integrationsById.get(id))),
        byExternalId: (provider, externalId) =>
          Effect.sync(() => Option.fromNullable(state.integrationsByExternal.get(externalKey(provider, externalId))))
      })
    ).pipe(
      Context.add(
        OrgRepo,
        OrgRepo.of({
          activeOrganizationIds: (id) => Effect.sync(() => (state.activeLinks.get(id) ?? []) as ReadonlyArray<any>),
          byIds: (ids) =>
            Effect.sync(() =>
              ids.flatMap((id) => {
                const org = state.organizations.get(id)
                return org === undefined ? [] : [org]
              })
            )
        })
      ),
      Context.add(
        RegionDirectory,
        RegionDirectory.of({
          byName: (name) => Effect.sync(() => Option.fromNullable(state.regions.get(name))),
          all: Effect.sync(() => Array.from(state.regions.values()).sort((a, b) => (a.name < b.name ? -1 : 1)))
        })
      ),
      Context.add(
        DirectoryStore,
        DirectoryStore.of({
          importDirectory: (next) =>
            Effect.sync(() => {
              state = buildDirectory(next)
            })
        })
      )
    )
  }))

/**
 * The volume gate in memory (one process only).
 *
 * @since 0.1.0
 * @category layers
 */
export const volumeGateLayer: Layer.Layer<VolumeGate> = Layer.sync(VolumeGate, () => {
  const counters = new Map<string, VolumeGates.VolumeCounter>()
  return VolumeGate.of({
    hit: (key, now, policy, count) => Effect.sync(() => volumeHit(counters, key, now, policy, count))
  })
})

/**
 * The rule of the volume gate (re-exported from the core).
 *
 * @since 0.1.0
 * @category utils
 */
export const volumeHit = VolumeGates.volumeHit

interface MailboxRow {
  region: string
  depth: number
  nextAttemptAt: number
  leaseOwner: string | null
  leaseUntil: number | null
}

/**
 * The outbox in memory, with the same semantics (ids, leases, ordering, dead letters, replay) as the SQL stores.
 *
 * @since 0.1.0
 * @category layers
 */
export const outboxLayer: Layer.Layer<Outbox> = Layer.sync(Outbox, () => makeOutbox())

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeOutbox = (): Outbox["Type"] => {
  let nextId = 0
  const payloads = new Map<number, StoredPayload>()
  const mailboxes = new Map<string, MailboxRow>()
  const dead = new Map<number, DeadLetter>()

  const held = (lease: Lease): Effect.Effect<MailboxRow, LeaseLost> => {
    const row = mailboxes.get(lease.mailbox)
    return row !== undefined && row.leaseOwner === lease.owner && row.leaseUntil !== null &&
        row.leaseUntil >= lease.now
      ? Effect.succeed(row)
      : Effect.fail(new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner }))
  }

  const inMailbox = (lease: Lease, id: number): Effect.Effect<StoredPayload, LeaseLost> => {
    const p = payloads.get(id)
    return p !== undefined && p.mailbox === lease.mailbox
      ? Effect.succeed(p)
      : Effect.fail(new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner }))
  }

  const add = (p: NewPayload & { readonly attempts?: number }, due: number) => {
    const id = ++nextId
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
      id,
      attempts: 0,
      nextAttemptAt: due,
      lastError: null
    })
    const row = mailboxes.get(p.mailbox)
    if (row === undefined) {
      mailboxes.set(p.mailbox, { region: p.region, depth: 1, nextAttemptAt: due, leaseOwner: null, leaseUntil: null })
    } else row.depth += 1
  }

  return Outbox.of({
    enqueue: (batch) =>
      Effect.sync(() => {
        for (const p of batch) add(p, p.receivedAt)
      }),
    claim: ({ leaseMs, limit, now, owner }) =>
      Effect.sync(() => {
        const due = Array.from(mailboxes.entries())
          .filter(([, r]) => r.nextAttemptAt <= now && (r.leaseUntil === null || r.leaseUntil < now))
          .sort(([a, ra], [b, rb]) => ra.nextAttemptAt - rb.nextAttemptAt || (a < b ? -1 : a > b ? 1 : 0))
          .slice(0, limit)
        for (const [, r] of due) {
          r.leaseOwner = owner
          r.leaseUntil = now + leaseMs
        }
        return due.map(([m]) => m)
      }),
    renew: (lease, leaseMs) =>
      Effect.map(held(lease), (row) => {
        row.leaseUntil = lease.now + leaseMs
      }),
    head: (mailbox, limit) =>
      Effect.sync(() =>
        Array.from(payloads.values())
          .filter((p) => p.mailbox === mailbox)
          .sort((a, b) => a.id - b.id)
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
      Effect.sync(() => {
        const chosen = ids === "all"
          ? Array.from(dead.keys()).sort((a, b) => a - b)
          : Array.from(new Set(ids)).filter((id) => dead.has(id)).sort((a, b) => a - b)
        for (const id of chosen) {
          const d = dead.get(id)!
          dead.delete(id)
          add(d, now)
        }
        return chosen.length
      }),
    deadLetters: Effect.sync(() => Array.from(dead.values()).sort((a, b) => a.id - b.id)),
    mailboxes: Effect.sync(() =>
      Array.from(mailboxes.entries())
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([mailbox, r]): MailboxInfo => {
          let oldest: number | null = null
          for (const p of payloads.values()) {
            if (p.mailbox === mailbox && (oldest === null || p.receivedAt < oldest)) oldest = p.receivedAt
          }
          return {
            mailbox,
            region: r.region as MailboxInfo["region"],
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
 * One request a region client sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentRequest {
  readonly region: string
  readonly request: OutgoingRequest
}

/**
 * A region client that records what it sends and answers with `answer` (default 200, empty body). Read what was
 * sent through `RegionRecorder`.
 *
 * @since 0.1.0
 * @category services
 */
export class RegionRecorder extends Context.Tag("@cellgate/adapters/Memory/RegionRecorder")<RegionRecorder, {
  readonly sent: Effect.Effect<ReadonlyArray<SentRequest>>
}>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const recordingRegionClient = (
  answer: (region: Region, request: OutgoingRequest) => Effect.Effect<RegionResponse, any> = () =>
    Effect.succeed({ status: 200, headers: {}, body: new Uint8Array(0) })
): Layer.Layer<RegionClient | RegionRecorder> =>
  Layer.effectContext(Effect.sync(() => {
    const sent: Array<SentRequest> = []
    return Context.make(
      RegionClient,
      RegionClient.of({
        send: (region, request) =>
          Effect.suspend(() => {
            sent.push({ region: region.name, request })
            return answer(region, request)
          })
      })
    ).pipe(Context.add(RegionRecorder, RegionRecorder.of({ sent: Effect.sync(() => sent.slice()) })))
  }))

/**
 * The store services in memory: the directory, the volume gate, the outbox, and a store that is always ready.
 *
 * @since 0.1.0
 * @category layers
 */
export const storeLayer = (directory: Directory): Layer.Layer<StoreServices> =>
  Layer.mergeAll(
    directoryLayer(directory),
    Layer.succeed(StoreHealth, StoreHealth.of({ check: Effect.void })),
    volumeGateLayer,
    outboxLayer
  )

/**
 * Every service in memory, the control side answering 404.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  directory: Directory
): Layer.Layer<StoreServices | RegionClient | RegionRecorder | ControlHandler> =>
  Layer.mergeAll(storeLayer(directory), recordingRegionClient(), Layer.succeed(ControlHandler, controlNotFound))
