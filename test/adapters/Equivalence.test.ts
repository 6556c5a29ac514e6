// Property tests: for generated directories, generated gate traffic and generated sequences of enqueue / claim /
// renew / head / complete / retry / deadLetter / release / replay, Memory, SQLite and PostgreSQL give identical
// answers (every call's result or error, and the final state).
import type { IntegrationId, OrganizationId, RegionName } from "@cellgate/core"
import {
  Directory,
  DirectoryStore,
  IntegrationRepo,
  OrgRepo,
  Outbox,
  RegionDirectory,
  ShedRules,
  VolumeGate
} from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Either, FastCheck as fc, Layer, Option, Schema } from "effect"
import { layer as testDatabase, TestDatabase } from "../support/Postgres.js"
import type { Services } from "../support/Stores.js"
import {
  memoryStore,
  plainIntegration,
  plainOrganization,
  plainPayload,
  plainRegion,
  postgresStore,
  sqliteStore
} from "../support/Stores.js"

// -- the three stores, built once per file; the SQL ones are emptied before every run --------------------------

class Stores extends Context.Tag("test/Equivalence/Stores")<Stores, {
  readonly sqlite: Context.Context<Services | SqlClient.SqlClient>
  readonly pg: Context.Context<Services | SqlClient.SqlClient>
}>() {}

const StoresLive = Layer.scoped(
  Stores,
  Effect.gen(function*() {
    const { url } = yield* TestDatabase
    const sqlite = yield* Layer.build(sqliteStore())
    const pg = yield* Layer.build(postgresStore(url))
    return { sqlite, pg }
  }).pipe(Effect.orDie)
).pipe(Layer.provideMerge(testDatabase))

const tables = [
  "outbox_payloads",
  "outbox_mailboxes",
  "outbox_dead_letters",
  "outbox_sequences",
  "volume_counters",
  "regions",
  "organizations",
  "integrations",
  "organization_integrations",
  "shed_rules"
]

const reset = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.gen(function*() {
    for (const table of tables) yield* sql.unsafe(`DELETE FROM ${table}`)
    yield* sql.onDialectOrElse({
      pg: () => sql.unsafe(`ALTER TABLE outbox_payloads ALTER COLUMN id RESTART WITH 1`),
      orElse: () => sql.unsafe(`DELETE FROM sqlite_sequence`)
    })
  })).pipe(Effect.orDie)

/** Runs `program` on each store from empty and returns the three answers (memory, sqlite, pg). */
const onEach = <A>(program: Effect.Effect<A, never, Services>) =>
  Effect.gen(function*() {
    const { pg, sqlite } = yield* Stores
    return yield* Effect.all([
      program.pipe(Effect.provide(Layer.fresh(memoryStore)), Effect.orDie),
      Effect.zipRight(reset, program).pipe(Effect.provide(sqlite)),
      Effect.zipRight(reset, program).pipe(Effect.provide(pg))
    ], { concurrency: "unbounded" })
  })

const assertSame = <A>([memory, sqlite, pg]: readonly [A, A, A]) => {
  assert.deepStrictEqual(sqlite, memory, "sqlite differs from memory")
  assert.deepStrictEqual(pg, memory, "postgres differs from memory")
}

// -- generators ----------------------------------------------------------------------------------------------------

/** Text PostgreSQL can hold (no NUL, no lone surrogate). */
const text = fc.string({ unit: "grapheme", maxLength: 8 }).filter((s) => !s.includes("\u0000"))
const regionNames = ["ap", "de", "eu", "us", "us2"]
const status = fc.constantFrom("active", "active", "disabled", "pending_deletion")

const directoryJson = fc.record({
  regions: fc.uniqueArray(
    fc.record({
      name: fc.constantFrom(...regionNames),
      url: fc.constantFrom("http://a", "https://b.example/x"),
      // a region secret is `whsec_` + base64 of at least 24 bytes (anything else is a configuration error)
      secret: fc.option(
        fc.uint8Array({ minLength: 24, maxLength: 40 }).map((key) => "whsec_" + Buffer.from(key).toString("base64")),
        {
          nil: undefined
        }
      )
    }),
    { selector: (r) => r.name, maxLength: 5 }
  ),
  organizations: fc.uniqueArray(
    fc.record({ id: fc.integer({ min: 1, max: 10 }), slug: text, region: fc.constantFrom(...regionNames) }),
    { selector: (o) => o.id, maxLength: 10 }
  ),
  integrations: fc.uniqueArray(
    fc.record({
      id: fc.integer({ min: 1, max: 6 }),
      provider: fc.constantFrom("jira_server", "github"),
      externalId: fc.constantFrom("x", "y", "z", "ü"),
      status,
      metadata: fc.record({ webhookSecret: text, sharedSecret: text }, { requiredKeys: [] })
    }),
    { selector: (i) => i.id, maxLength: 6 }
  ),
  organizationIntegrations: fc.array(
    fc.record({
      organizationId: fc.integer({ min: 1, max: 12 }),
      integrationId: fc.integer({ min: 1, max: 7 }),
      status
    }),
    { maxLength: 20 }
  )
}).map((json) => Schema.decodeUnknownSync(Directory)(JSON.parse(JSON.stringify(json))))

const askDirectory = (orgIdLists: ReadonlyArray<ReadonlyArray<number>>) =>
  Effect.gen(function*() {
    const integrations = yield* IntegrationRepo.IntegrationRepo
    const orgs = yield* OrgRepo.OrgRepo
    const regions = yield* RegionDirectory.RegionDirectory
    const out: Array<unknown> = []
    for (let id = 0; id <= 7; id++) {
      out.push(Option.map(yield* integrations.byId(id as IntegrationId), plainIntegration))
      out.push(yield* orgs.activeOrganizationIds(id as IntegrationId))
    }
    for (const provider of ["jira_server", "github", "gitlab"]) {
      for (const ext of ["x", "y", "z", "ü", ""]) {
        out.push(Option.map(yield* integrations.byExternalId(provider, ext), plainIntegration))
      }
    }
    for (const ids of orgIdLists) {
      out.push((yield* orgs.byIds(ids as ReadonlyArray<OrganizationId>)).map(plainOrganization))
    }
    for (const name of [...regionNames, "nope"]) {
      out.push(Option.map(yield* regions.byName(name as RegionName), plainRegion))
    }
    out.push((yield* regions.all).map(plainRegion))
    return out
  })

const boxes = [
  "jira_server:us:1",
  "jira_server:us:2",
  "github:de:1",
  "github:de:1:7",
  "jira_server:us:3",
  "github:de:2"
]
/** Tenants: `i:5` (even boxes), `m:<mailbox>` (odd ones, no integration), or a payload's own `o:`. */
const tenants = ["i:5", "o:1", "o:2", ...boxes.map((b) => `m:${b}`)]
const owners = ["w1", "w2"]

type Command =
  | {
    readonly _tag: "enqueue"
    readonly payloads: ReadonlyArray<{ box: number; ago: number; body: Uint8Array; tenant: string | null | undefined }>
  }
  | { readonly _tag: "tick"; readonly ms: number }
  | {
    readonly _tag: "claim"
    readonly owner: number
    readonly limit: number
    readonly leaseMs: number
    readonly fairShare: number | undefined
    readonly held: ReadonlyArray<readonly [string, number]>
  }
  | { readonly _tag: "renew"; readonly owner: number; readonly box: number; readonly leaseMs: number }
  | { readonly _tag: "head"; readonly box: number; readonly limit: number }
  | { readonly _tag: "complete"; readonly owner: number; readonly box: number; readonly pick: number }
  | {
    readonly _tag: "retry"
    readonly owner: number
    readonly box: number
    readonly pick: number
    readonly delay: number
    readonly error: string
  }
  | {
    readonly _tag: "deadLetter"
    readonly owner: number
    readonly box: number
    readonly pick: number
    readonly status: number | null
    readonly lastBody: string | null
  }
  | { readonly _tag: "release"; readonly owner: number; readonly box: number; readonly delay: number }
  | { readonly _tag: "replay"; readonly ids: "all" | ReadonlyArray<number> }

const owner = fc.integer({ min: 0, max: owners.length - 1 })
const box = fc.integer({ min: 0, max: boxes.length - 1 })
const pick = fc.integer({ min: 0, max: 5 }) // 0..2: one of the head's first three; 3..5: an id that may not be there

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc.record({
      _tag: fc.constant("enqueue" as const),
      payloads: fc.array(
        fc.record({
          box,
          ago: fc.integer({ min: 0, max: 50 }),
          body: fc.uint8Array({ maxLength: 12 }),
          tenant: fc.option(fc.constantFrom("o:1", "o:2", null), { nil: undefined, freq: 2 })
        }),
        { minLength: 1, maxLength: 4 }
      )
    }),
    weight: 4
  },
  { arbitrary: fc.record({ _tag: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 120 }) }), weight: 2 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("claim" as const),
      owner,
      limit: fc.integer({ min: 0, max: 5 }),
      leaseMs: fc.integer({ min: 0, max: 100 }),
      fairShare: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined, freq: 4 }),
      held: fc.uniqueArray(fc.tuple(fc.constantFrom(...tenants), fc.integer({ min: 0, max: 3 })), {
        selector: ([t]) => t,
        maxLength: 3
      })
    }),
    weight: 5
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("renew" as const),
      owner,
      box,
      leaseMs: fc.integer({ min: 0, max: 100 })
    }),
    weight: 1
  },
  {
    arbitrary: fc.record({ _tag: fc.constant("head" as const), box, limit: fc.integer({ min: 0, max: 3 }) }),
    weight: 1
  },
  { arbitrary: fc.record({ _tag: fc.constant("complete" as const), owner, box, pick }), weight: 4 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("retry" as const),
      owner,
      box,
      pick,
      delay: fc.integer({ min: -10, max: 100 }),
      error: text
    }),
    weight: 2
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("deadLetter" as const),
      owner,
      box,
      pick,
      status: fc.option(fc.constantFrom(400, 404, 500), { nil: null }),
      lastBody: fc.option(text, { nil: null })
    }),
    weight: 2
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("release" as const),
      owner,
      box,
      delay: fc.integer({ min: 0, max: 100 })
    }),
    weight: 3
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("replay" as const),
      ids: fc.oneof(fc.constant("all" as const), fc.array(fc.integer({ min: 0, max: 25 }), { maxLength: 4 }))
    }),
    weight: 1
  }
)

const answer = <A, E extends { readonly _tag: string }>(eff: Effect.Effect<A, E>, f: (a: A) => unknown = (a) => a) =>
  Effect.map(Effect.either(eff), Either.match({ onLeft: (e) => ({ error: e._tag }), onRight: f }))

const runCommands = (commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    let now = 1_000
    let delivery = 0
    const out: Array<unknown> = []
    const resolveId = (mailbox: string, n: number) =>
      n >= 3
        ? Effect.succeed(n * 3 - 8) // 1, 4, 7: any mailbox's
        : Effect.map(Effect.orDie(outbox.head(mailbox, 3)), (head) => head[n]?.id ?? 999)
    for (const c of commands) {
      switch (c._tag) {
        case "enqueue": {
          const payloads = c.payloads.map((p): Outbox.NewPayload => ({
            mailbox: boxes[p.box],
            provider: boxes[p.box].split(":")[0],
            region: boxes[p.box].split(":")[1] as RegionName,
            integrationId: p.box % 2 === 0 ? 5 as IntegrationId : null,
            method: "POST",
            path: `/extensions/x/${p.box}?q=${p.ago}`,
            headers: { "x-n": String(p.ago) },
            body: p.body,
            receivedAt: now - p.ago,
            deliveryId: `d${++delivery}`,
            ...(p.tenant === undefined ? {} : { tenant: p.tenant })
          }))
          out.push(yield* answer(outbox.enqueue(payloads)))
          break
        }
        case "tick":
          now += c.ms
          break
        case "claim":
          out.push(
            yield* answer(
              outbox.claim({
                owner: owners[c.owner],
                now,
                leaseMs: c.leaseMs,
                limit: c.limit,
                fairShare: c.fairShare,
                held: new Map(c.held)
              })
            )
          )
          break
        case "renew":
          out.push(yield* answer(outbox.renew({ mailbox: boxes[c.box], owner: owners[c.owner], now }, c.leaseMs)))
          break
        case "head":
          out.push(yield* answer(outbox.head(boxes[c.box], c.limit), (ps) => ps.map(plainPayload)))
          break
        case "complete": {
          const id = yield* resolveId(boxes[c.box], c.pick)
          out.push(yield* answer(outbox.complete({ mailbox: boxes[c.box], owner: owners[c.owner], now }, id)))
          break
        }
        case "retry": {
          const id = yield* resolveId(boxes[c.box], c.pick)
          out.push(
            yield* answer(
              outbox.retry({ mailbox: boxes[c.box], owner: owners[c.owner], now }, id, {
                nextAttemptAt: now + c.delay,
                error: c.error
              })
            )
          )
          break
        }
        case "deadLetter": {
          const id = yield* resolveId(boxes[c.box], c.pick)
          out.push(
            yield* answer(
              outbox.deadLetter({ mailbox: boxes[c.box], owner: owners[c.owner], now }, id, {
                reason: "r",
                lastStatus: c.status,
                lastBody: c.lastBody
              })
            )
          )
          break
        }
        case "release":
          out.push(yield* answer(outbox.release({ mailbox: boxes[c.box], owner: owners[c.owner], now }, now + c.delay)))
          break
        case "replay":
          out.push(yield* answer(outbox.replay(c.ids, now)))
          break
      }
    }
    out.push(yield* answer(outbox.mailboxes))
    out.push(yield* answer(outbox.deadLetters, (ds) => ds.map(plainPayload)))
    for (const b of boxes) out.push(yield* answer(outbox.head(b, 100), (ps) => ps.map(plainPayload)))
    return out
  })

layer(StoresLive, { timeout: "120 seconds" })("memory = sqlite = postgres", (it) => {
  it.effect.prop(
    "directory: every lookup answers alike after each import",
    {
      first: directoryJson,
      second: directoryJson,
      orgIds: fc.array(fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 5 }), { maxLength: 3 })
    },
    ({ first, orgIds, second }) =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          const store = yield* DirectoryStore.DirectoryStore
          yield* Effect.orDie(store.importDirectory(first))
          const a = yield* Effect.orDie(askDirectory(orgIds))
          yield* Effect.orDie(store.importDirectory(second))
          const b = yield* Effect.orDie(askDirectory(orgIds))
          return [a, b]
        })
        assertSame(yield* onEach(program))
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "shed rules: generated adds and removes answer alike, and list the same rules",
    {
      calls: fc.array(
        fc.record({
          add: fc.boolean(),
          provider: fc.constantFrom("github", "gitlab", "plugins"),
          integrationId: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined })
        }),
        { maxLength: 30 }
      )
    },
    ({ calls }) =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          const shed = yield* ShedRules.ShedRules
          const out: Array<unknown> = []
          for (const c of calls) {
            const rule = c.integrationId === undefined
              ? { provider: c.provider }
              : { provider: c.provider, integrationId: c.integrationId as IntegrationId }
            out.push(yield* answer(c.add ? shed.add(rule) : shed.remove(rule)))
          }
          out.push(yield* answer(shed.list))
          return out
        })
        assertSame(yield* onEach(program))
      }),
    { fastCheck: { numRuns: 30 } }
  )

  it.effect.prop(
    "volume gate: the same verdicts",
    {
      policy: fc.record({
        limit: fc.integer({ min: 0, max: 4 }),
        windowMs: fc.integer({ min: 1, max: 1000 }),
        holdMs: fc.integer({ min: 0, max: 1500 })
      }),
      hits: fc.array(fc.record({ key: fc.constantFrom("a", "b"), dt: fc.integer({ min: 0, max: 400 }) }), {
        maxLength: 40
      })
    },
    ({ hits, policy }) =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          const gate = yield* VolumeGate.VolumeGate
          let now = 10_000
          const out: Array<unknown> = []
          for (const h of hits) {
            now += h.dt
            out.push(yield* answer(gate.hit(h.key, now, policy)))
          }
          return out
        })
        assertSame(yield* onEach(program))
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "outbox: generated sequences of calls answer alike, and leave the same state",
    { commands: fc.array(command, { minLength: 1, maxLength: 40 }) },
    ({ commands }) =>
      Effect.gen(function*() {
        assertSame(yield* onEach(runCommands(commands)))
      }),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect.prop(
    "outbox: generated fair claims over generated tenants and holdings answer alike (docs/routing.md#fair-adaptive-delivery)",
    {
      mailboxes: fc.array(
        fc.record({ tenant: fc.constantFrom("i:1", "i:2", "o:3", "o:4"), due: fc.integer({ min: 0, max: 20 }) }),
        { minLength: 1, maxLength: 16 }
      ),
      claims: fc.array(
        fc.record({
          owner,
          limit: fc.integer({ min: 0, max: 8 }),
          leaseMs: fc.integer({ min: 0, max: 30 }),
          tick: fc.integer({ min: 0, max: 10 }),
          // a share that is no integer (1.5) ranks as its floor, as `claimOrder` does
          fairShare: fc.option(fc.constantFrom(0, 1, 2, 3, 1.5), { nil: undefined, freq: 5 }),
          held: fc.uniqueArray(fc.tuple(fc.constantFrom("i:1", "i:2", "o:3", "o:9"), fc.integer({ min: 0, max: 4 })), {
            selector: ([t]) => t,
            maxLength: 4
          })
        }),
        { minLength: 1, maxLength: 8 }
      )
    },
    ({ claims, mailboxes }) =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          const outbox = yield* Outbox.Outbox
          yield* Effect.orDie(outbox.enqueue(mailboxes.map((m, i): Outbox.NewPayload => ({
            mailbox: `fair:us:${i}`,
            provider: "fair",
            region: "us" as RegionName,
            integrationId: null,
            method: "POST",
            path: "/",
            headers: {},
            body: new Uint8Array(0),
            receivedAt: 100 + m.due,
            deliveryId: `f${i}`,
            tenant: m.tenant
          }))))
          let now = 110
          const out: Array<unknown> = []
          for (const c of claims) {
            now += c.tick
            out.push(
              yield* answer(
                outbox.claim({
                  owner: owners[c.owner],
                  now,
                  leaseMs: c.leaseMs,
                  limit: c.limit,
                  fairShare: c.fairShare,
                  held: new Map(c.held)
                })
              )
            )
          }
          out.push(yield* answer(outbox.mailboxes))
          return out
        })
        assertSame(yield* onEach(program))
      }),
    { fastCheck: { numRuns: 80 } }
  )
})
