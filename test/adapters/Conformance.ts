// The store conformance suite, written once and run against Memory, SQLite and PostgreSQL: every repository and
// outbox call, with the answers the memory store (the reference) gives.
import { Memory } from "@cellgate/adapters"
import type { IntegrationId, OrganizationId, RegionName, StoreUnavailable } from "@cellgate/core"
import {
  Directory,
  DirectoryStore,
  IntegrationRepo,
  OrgRepo,
  Outbox,
  RegionDirectory,
  ShedRules,
  StoreHealth,
  VolumeGate
} from "@cellgate/core"
import type { Vitest } from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Redacted, Schema, TestClock } from "effect"
import type { Services } from "../support/Stores.js"
import { plainIntegration, plainOrganization, plainPayload, plainRegion } from "../support/Stores.js"

/** A valid region secret (`whsec_` + base64 of 24 bytes). */
const DE_SECRET = "whsec_" + Buffer.from("the de region signing key").toString("base64")

export const sampleDirectory = Schema.decodeUnknownSync(Directory)({
  regions: [
    { name: "us", url: "http://us.example" },
    { name: "de", url: "http://de.example", secret: DE_SECRET }
  ],
  organizations: [
    { id: 1, slug: "acme", region: "us" },
    { id: 2, slug: "globex", region: "de" },
    { id: 3, slug: "initech", region: "us" }
  ],
  integrations: [
    { id: 10, provider: "jira_server", externalId: "ext-10", metadata: { webhookSecret: "s3cret" } },
    { id: 11, provider: "jira_server", externalId: "ext-11", status: "disabled" },
    { id: 12, provider: "github", externalId: "ext-10", metadata: { sharedSecret: "sh", webhookSecret: "w" } }
  ],
  organizationIntegrations: [
    { organizationId: 2, integrationId: 10 },
    { organizationId: 1, integrationId: 10 },
    { organizationId: 3, integrationId: 10, status: "disabled" },
    { organizationId: 9, integrationId: 10 },
    { organizationId: 2, integrationId: 10 },
    { organizationId: 1, integrationId: 12 }
  ]
})

let deliveries = 0
export const payload = (
  mailbox: string,
  receivedAt: number,
  overrides: Partial<Outbox.NewPayload> = {}
): Outbox.NewPayload => ({
  mailbox,
  provider: "jira_server",
  region: (mailbox.split(":")[1] ?? "us") as RegionName,
  integrationId: 10 as IntegrationId,
  method: "POST",
  path: "/extensions/jira-server/issue-updated/t/?x=1",
  headers: { "content-type": "application/json", "x-a": "ü" },
  body: new TextEncoder().encode(JSON.stringify({ n: receivedAt, mailbox })),
  receivedAt,
  deliveryId: `d-${++deliveries}`,
  ...overrides
})

/** The mailbox names of a claim, in claim order. */
export const names = (claimed: ReadonlyArray<Outbox.Claimed>) => claimed.map((c) => c.mailbox)

const iid = (n: number) => n as IntegrationId
const oid = (n: number) => n as OrganizationId
const rn = (s: string) => s as RegionName

export const conformance = <R>(
  it: Vitest.MethodsNonLive<R>,
  fresh: Layer.Layer<Services, StoreUnavailable, R>
) => {
  const test = (name: string, body: Effect.Effect<void, unknown, Services>) =>
    it.effect(name, () => body.pipe(Effect.provide(Layer.fresh(fresh))) as Effect.Effect<void, unknown, R>)

  test(
    "health check passes",
    Effect.gen(function*() {
      yield* (yield* StoreHealth.StoreHealth).check
    })
  )

  test(
    "shed rules (0005_shed_rules): add once, list sorted, remove exactly that rule; an import leaves them",
    Effect.gen(function*() {
      const shed = yield* ShedRules.ShedRules
      assert.deepStrictEqual(yield* shed.list, [])
      assert.isTrue(yield* shed.add({ provider: "github", integrationId: iid(12) }))
      assert.isTrue(yield* shed.add({ provider: "github" }))
      assert.isTrue(yield* shed.add({ provider: "bitbucket", integrationId: iid(3) }))
      assert.isTrue(yield* shed.add({ provider: "github", integrationId: iid(2) }))
      assert.isFalse(yield* shed.add({ provider: "github", integrationId: iid(12) }))
      assert.isFalse(yield* shed.add({ provider: "github" }))
      yield* (yield* DirectoryStore.DirectoryStore).importDirectory(sampleDirectory)
      assert.deepStrictEqual(yield* shed.list, [
        { provider: "bitbucket", integrationId: iid(3) },
        { provider: "github" },
        { provider: "github", integrationId: iid(2) },
        { provider: "github", integrationId: iid(12) }
      ])
      // a provider-wide rule is not an integration's, nor the other way round
      assert.isFalse(yield* shed.remove({ provider: "bitbucket" }))
      assert.isTrue(yield* shed.remove({ provider: "github" }))
      assert.isFalse(yield* shed.remove({ provider: "github" }))
      assert.isTrue(yield* shed.remove({ provider: "github", integrationId: iid(12) }))
      assert.deepStrictEqual(yield* shed.list, [
        { provider: "bitbucket", integrationId: iid(3) },
        { provider: "github", integrationId: iid(2) }
      ])
    })
  )

  test(
    "directory: lookups answer like the snapshot, secrets come back Redacted",
    Effect.gen(function*() {
      yield* (yield* DirectoryStore.DirectoryStore).importDirectory(sampleDirectory)
      const integrations = yield* IntegrationRepo.IntegrationRepo
      const orgs = yield* OrgRepo.OrgRepo
      const regions = yield* RegionDirectory.RegionDirectory

      const i10 = yield* integrations.byId(iid(10))
      assert.deepStrictEqual(
        Option.map(i10, plainIntegration),
        Option.some({
          id: iid(10),
          provider: "jira_server",
          externalId: "ext-10",
          status: "active" as const,
          webhookSecret: "s3cret",
          sharedSecret: undefined
        })
      )
      assert.strictEqual(String(Option.getOrThrow(i10).metadata.webhookSecret), "<redacted>")
      assert.deepStrictEqual(
        Option.map(yield* integrations.byId(iid(11)), (i) => i.status),
        Option.some("disabled" as const)
      )
      assert.isTrue(Option.isNone(yield* integrations.byId(iid(99))))
      assert.deepStrictEqual(
        Option.map(yield* integrations.byExternalId("github", "ext-10"), plainIntegration),
        Option.some({
          id: iid(12),
          provider: "github",
          externalId: "ext-10",
          status: "active" as const,
          webhookSecret: "w",
          sharedSecret: "sh"
        })
      )
      assert.isTrue(Option.isNone(yield* integrations.byExternalId("jira_server", "nope")))
      assert.isTrue(Option.isNone(yield* integrations.byExternalId("gitlab", "ext-10")))

      assert.deepStrictEqual(yield* orgs.activeOrganizationIds(iid(10)), [oid(2), oid(1), oid(9), oid(2)])
      assert.deepStrictEqual(yield* orgs.activeOrganizationIds(iid(11)), [])
      assert.deepStrictEqual(
        (yield* orgs.byIds([oid(3), oid(9), oid(1), oid(3)])).map(plainOrganization),
        [
          { id: oid(3), slug: "initech", region: rn("us") },
          { id: oid(1), slug: "acme", region: rn("us") },
          { id: oid(3), slug: "initech", region: rn("us") }
        ]
      )
      assert.deepStrictEqual(yield* orgs.byIds([]), [])

      assert.deepStrictEqual(
        Option.map(yield* regions.byName(rn("de")), plainRegion),
        Option.some({
          name: rn("de"),
          url: "http://de.example",
          secret: DE_SECRET
        })
      )
      assert.isTrue(Option.isNone(yield* regions.byName(rn("eu"))))
      assert.deepStrictEqual((yield* regions.all).map(plainRegion), [
        { name: rn("de"), url: "http://de.example", secret: DE_SECRET },
        { name: rn("us"), url: "http://us.example", secret: undefined }
      ])
    })
  )

  test(
    "directory: an import replaces everything",
    Effect.gen(function*() {
      const store = yield* DirectoryStore.DirectoryStore
      yield* store.importDirectory(sampleDirectory)
      yield* store.importDirectory(
        Schema.decodeUnknownSync(Directory)({
          regions: [{ name: "eu", url: "https://eu.example" }],
          integrations: [{ id: 12, provider: "github", externalId: "other" }]
        })
      )
      assert.isTrue(Option.isNone(yield* (yield* IntegrationRepo.IntegrationRepo).byId(iid(10))))
      assert.isTrue(Option.isNone(yield* (yield* IntegrationRepo.IntegrationRepo).byExternalId("github", "ext-10")))
      assert.deepStrictEqual(
        Option.map(yield* (yield* IntegrationRepo.IntegrationRepo).byExternalId("github", "other"), (i) => i.metadata),
        Option.some({})
      )
      assert.deepStrictEqual(yield* (yield* OrgRepo.OrgRepo).activeOrganizationIds(iid(12)), [])
      assert.deepStrictEqual(yield* (yield* OrgRepo.OrgRepo).byIds([oid(1)]), [])
      assert.deepStrictEqual((yield* (yield* RegionDirectory.RegionDirectory).all).map((r) => r.name), [rn("eu")])
    })
  )

  test(
    "volume gate: the rule of Memory.volumeHit",
    Effect.gen(function*() {
      const gate = yield* VolumeGate.VolumeGate
      const policy = { limit: 3, windowMs: 1000, holdMs: 2500 }
      const reference = new Map()
      const times = [0, 1, 2, 3, 4, 999, 1000, 1001, 2000, 2003, 2500, 2504, 3000, 3001, 3002, 3003, 5600, 9000]
      for (const key of ["a", "b"]) {
        for (const now of times) {
          const expected = Memory.volumeHit(reference, key, now, policy)
          assert.deepStrictEqual(yield* gate.hit(key, now, policy), expected, `${key} at ${now}`)
        }
      }
      // limit 0: the first hit switches on
      assert.deepStrictEqual(yield* gate.hit("c", 5, { limit: 0, windowMs: 10, holdMs: 10 }), {
        bucketed: true,
        switched: true
      })
    })
  )

  test(
    "outbox: enqueue, mailboxes, head",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([])
      yield* outbox.enqueue([payload("jira:us:1", 100), payload("jira:de:1", 50)])
      yield* outbox.enqueue([payload("jira:us:1", 20)])
      const boxes = yield* outbox.mailboxes
      assert.deepStrictEqual(boxes, [
        {
          mailbox: "jira:de:1",
          region: rn("de"),
          tenant: "i:10",
          depth: 1,
          oldestReceivedAt: 50,
          nextAttemptAt: 50,
          leasedBy: null,
          leaseUntil: null
        },
        {
          mailbox: "jira:us:1",
          region: rn("us"),
          tenant: "i:10",
          depth: 2,
          oldestReceivedAt: 20,
          nextAttemptAt: 100,
          leasedBy: null,
          leaseUntil: null
        }
      ])
      const head = yield* outbox.head("jira:us:1", 10)
      assert.deepStrictEqual(head.map((p) => [p.id, p.receivedAt, p.attempts, p.nextAttemptAt, p.lastError]), [
        [1, 100, 0, 100, null],
        [3, 20, 0, 20, null]
      ])
      assert.deepStrictEqual(
        plainPayload(head[0]),
        plainPayload({
          ...payload("jira:us:1", 100, { deliveryId: head[0].deliveryId }),
          replyTarget: null,
          traceContext: null,
          tenant: "i:10",
          id: 1,
          sequence: 1,
          attempts: 0,
          nextAttemptAt: 100,
          lastError: null
        })
      )
      assert.deepStrictEqual((yield* outbox.head("jira:us:1", 1)).map((p) => p.id), [1])
      assert.deepStrictEqual(yield* outbox.head("nope", 5), [])
    })
  )

  test(
    "outbox: claim order, leases, renew, expiry",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([
        payload("b:us:1", 10),
        payload("a:us:1", 10),
        payload("c:us:1", 5),
        payload("d:us:1", 500)
      ])
      const first = yield* outbox.claim({ owner: "w1", now: 100, leaseMs: 50, limit: 2 })
      assert.deepStrictEqual(first, [{ mailbox: "c:us:1", tenant: "i:10" }, { mailbox: "a:us:1", tenant: "i:10" }])
      const second = yield* outbox.claim({ owner: "w2", now: 100, leaseMs: 50, limit: 10 })
      assert.deepStrictEqual(names(second), ["b:us:1"])
      assert.deepStrictEqual(yield* outbox.claim({ owner: "w2", now: 150, leaseMs: 50, limit: 10 }), [])
      // renew by the holder; not by another owner; not after expiry
      yield* outbox.renew({ mailbox: "c:us:1", owner: "w1", now: 150 }, 100)
      const lost = yield* Effect.flip(outbox.renew({ mailbox: "c:us:1", owner: "w2", now: 150 }, 100))
      assert.strictEqual(lost._tag, "LeaseLost")
      const expired = yield* Effect.flip(outbox.renew({ mailbox: "a:us:1", owner: "w1", now: 151 }, 100))
      assert.strictEqual(expired._tag, "LeaseLost")
      // a:us:1's lease ran out at 150: claimable again at 151 (lease valid while lease_until >= now)
      assert.deepStrictEqual(names(yield* outbox.claim({ owner: "w3", now: 151, leaseMs: 50, limit: 10 })), [
        "a:us:1",
        "b:us:1"
      ])
      const boxes = yield* outbox.mailboxes
      assert.deepStrictEqual(boxes.map((b) => [b.mailbox, b.leasedBy, b.leaseUntil]), [
        ["a:us:1", "w3", 201],
        ["b:us:1", "w3", 201],
        ["c:us:1", "w1", 250],
        ["d:us:1", null, null]
      ])
      assert.deepStrictEqual(yield* outbox.claim({ owner: "w3", now: 151, leaseMs: 50, limit: 0 }), [])
    })
  )

  test(
    "outbox: complete, retry, dead letter are lease-guarded",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([payload("m:us:1", 1), payload("m:us:1", 2), payload("m:us:1", 3), payload("n:us:1", 4)])
      yield* outbox.claim({ owner: "w1", now: 10, leaseMs: 100, limit: 1 })
      const lease = { mailbox: "m:us:1", owner: "w1", now: 20 }
      // wrong owner, expired lease, payload of another mailbox, unknown id
      for (
        const eff of [
          outbox.complete({ ...lease, owner: "w2" }, 1),
          outbox.complete({ ...lease, now: 111 }, 1),
          outbox.complete(lease, 4),
          outbox.complete(lease, 99),
          outbox.retry({ ...lease, owner: "w2" }, 1, { nextAttemptAt: 5, error: "x" }),
          outbox.retry(lease, 4, { nextAttemptAt: 5, error: "x" }),
          outbox.deadLetter({ ...lease, now: 200 }, 1, { reason: "r", lastStatus: 400, lastBody: "b" }),
          outbox.deadLetter(lease, 4, { reason: "r", lastStatus: 400, lastBody: "b" }),
          outbox.complete({ mailbox: "n:us:1", owner: "w1", now: 20 }, 4)
        ]
      ) {
        const error = yield* Effect.flip(eff)
        assert.strictEqual(error._tag, "LeaseLost")
      }
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => b.depth), [3, 1])

      yield* outbox.complete(lease, 1)
      yield* outbox.retry(lease, 2, { nextAttemptAt: 500, error: "HTTP 503" })
      yield* outbox.retry(lease, 2, { nextAttemptAt: 700, error: "timeout" })
      const [p2] = yield* outbox.head("m:us:1", 1)
      assert.deepStrictEqual([p2.id, p2.attempts, p2.nextAttemptAt, p2.lastError], [2, 2, 700, "timeout"])
      yield* outbox.deadLetter(lease, 2, { reason: "permanent", lastStatus: 404, lastBody: "not found" })
      yield* outbox.deadLetter(lease, 3, { reason: "too old", lastStatus: null, lastBody: null })
      assert.deepStrictEqual(yield* outbox.head("m:us:1", 10), [])
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => [b.mailbox, b.depth, b.oldestReceivedAt]), [
        ["m:us:1", 0, null],
        ["n:us:1", 1, 4]
      ])
      const dead = yield* outbox.deadLetters
      assert.deepStrictEqual(
        dead.map((d) => [d.id, d.mailbox, d.attempts, d.lastError, d.deadAt, d.reason, d.lastStatus, d.lastBody]),
        [
          [2, "m:us:1", 2, "timeout", 20, "permanent", 404, "not found"],
          [3, "m:us:1", 0, null, 20, "too old", null, null]
        ]
      )
      assert.deepStrictEqual(
        plainPayload(dead[1]),
        plainPayload({
          ...payload("m:us:1", 3, { deliveryId: dead[1].deliveryId }),
          replyTarget: null,
          traceContext: null,
          tenant: "i:10",
          id: 3,
          sequence: 3,
          attempts: 0,
          nextAttemptAt: 3,
          lastError: null,
          deadAt: 20,
          reason: "too old",
          lastStatus: null,
          lastBody: null
        })
      )
    })
  )

  test(
    "outbox: release removes an empty mailbox, gives back a non-empty one, ignores a lost lease",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([payload("e:us:1", 1), payload("f:us:1", 1)])
      yield* outbox.claim({ owner: "w1", now: 10, leaseMs: 100, limit: 2 })
      yield* outbox.complete({ mailbox: "e:us:1", owner: "w1", now: 20 }, 1)
      yield* outbox.release({ mailbox: "e:us:1", owner: "w2", now: 20 }, 999) // not the owner: nothing
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => b.mailbox), ["e:us:1", "f:us:1"])
      yield* outbox.release({ mailbox: "e:us:1", owner: "w1", now: 20 }, 999)
      yield* outbox.release({ mailbox: "f:us:1", owner: "w1", now: 20 }, 777)
      yield* outbox.release({ mailbox: "zzz", owner: "w1", now: 20 }, 777)
      assert.deepStrictEqual(yield* outbox.mailboxes, [{
        mailbox: "f:us:1",
        region: rn("us"),
        tenant: "i:10",
        depth: 1,
        oldestReceivedAt: 1,
        nextAttemptAt: 777,
        leasedBy: null,
        leaseUntil: null
      }])
      assert.deepStrictEqual(yield* outbox.claim({ owner: "w2", now: 776, leaseMs: 1, limit: 5 }), [])
      assert.deepStrictEqual(names(yield* outbox.claim({ owner: "w2", now: 777, leaseMs: 1, limit: 5 })), ["f:us:1"])
      // a new payload for a released (deleted) mailbox makes a new row due at its receivedAt
      yield* outbox.enqueue([payload("e:us:1", 5)])
      assert.deepStrictEqual(
        (yield* outbox.mailboxes).map((b) => [b.mailbox, b.depth, b.nextAttemptAt]),
        [["e:us:1", 1, 5], ["f:us:1", 1, 777]]
      )
    })
  )

  test(
    "outbox: replay moves dead letters to the tail with new ids, attempts 0, due now, same delivery id",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([payload("r:us:1", 1), payload("r:us:1", 2), payload("s:de:1", 3)])
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 5 })
      yield* outbox.retry({ mailbox: "r:us:1", owner: "w", now: 10 }, 1, { nextAttemptAt: 50, error: "e" })
      yield* outbox.deadLetter({ mailbox: "r:us:1", owner: "w", now: 11 }, 1, {
        reason: "x",
        lastStatus: 400,
        lastBody: ""
      })
      yield* outbox.deadLetter({ mailbox: "s:de:1", owner: "w", now: 12 }, 3, {
        reason: "x",
        lastStatus: 401,
        lastBody: null
      })
      yield* outbox.release({ mailbox: "s:de:1", owner: "w", now: 12 }, 0)
      const dead = yield* outbox.deadLetters
      assert.strictEqual(yield* outbox.replay([42], 1000), 0)
      assert.strictEqual(yield* outbox.replay([], 1000), 0)
      assert.strictEqual(yield* outbox.replay([1, 1, 42], 1000), 1)
      const r = yield* outbox.head("r:us:1", 10)
      assert.deepStrictEqual(r.map((p) => [p.id, p.attempts, p.nextAttemptAt, p.lastError, p.receivedAt]), [
        [2, 0, 2, null, 2],
        [4, 0, 1000, null, 1]
      ])
      assert.strictEqual(r[1].deliveryId, dead[0].deliveryId)
      assert.strictEqual(yield* outbox.replay("all", 2000), 1)
      assert.strictEqual(yield* outbox.replay("all", 2000), 0)
      assert.deepStrictEqual(yield* outbox.deadLetters, [])
      assert.deepStrictEqual(
        (yield* outbox.mailboxes).map((b) => [b.mailbox, b.region, b.depth, b.nextAttemptAt, b.leasedBy]),
        [["r:us:1", "us", 2, 1, "w"], ["s:de:1", "de", 1, 2000, null]]
      )
      const [s] = yield* outbox.head("s:de:1", 1)
      assert.deepStrictEqual([s.id, s.deliveryId, s.region], [5, dead[1].deliveryId, rn("de")])
    })
  )

  test(
    "outbox: bytes in = bytes out (invalid UTF-8, NUL, 1 MiB), headers kept",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const big = new Uint8Array(1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 8)) & 0xff
      const bodies = [
        new Uint8Array([0xff, 0xfe, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80]),
        new Uint8Array([0x7b, 0x00, 0x7d, 0x00]),
        new Uint8Array(0),
        big,
        new Uint8Array(big.buffer, 10, 100) // a view into a larger buffer: only the view's bytes
      ]
      const headers = { "x-nul": "a\u0000b", "x-emoji": "🙂", "x-quote": "\"'\\" }
      yield* outbox.enqueue(bodies.map((body, i) => payload(`bytes:us:${i}`, i, { body, headers })))
      for (let i = 0; i < bodies.length; i++) {
        const [p] = yield* outbox.head(`bytes:us:${i}`, 1)
        assert.strictEqual(p.body.byteLength, bodies[i].byteLength)
        assert.isTrue(Buffer.from(p.body).equals(Buffer.from(bodies[i])), `body ${i}`)
        assert.deepStrictEqual(p.headers, headers)
      }
      // through a dead letter and a replay too
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 1 })
      yield* outbox.deadLetter({ mailbox: "bytes:us:0", owner: "w", now: 10 }, 1, {
        reason: "x",
        lastStatus: null,
        lastBody: null
      })
      assert.isTrue(Buffer.from((yield* outbox.deadLetters)[0].body).equals(Buffer.from(bodies[0])))
      yield* outbox.replay("all", 20)
      const [again] = yield* outbox.head("bytes:us:0", 1)
      assert.isTrue(Buffer.from(again.body).equals(Buffer.from(bodies[0])))
    })
  )

  test(
    "outbox: a durable enqueue wakes this process's awaitWork; one made while nobody waited is not lost",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const waiter = yield* Effect.fork(outbox.awaitWork(60_000))
      yield* outbox.enqueue([payload("wake:us:1", 1)])
      yield* Fiber.join(waiter) // without the (test) clock moving
      yield* outbox.enqueue([payload("wake:us:1", 2)])
      yield* outbox.awaitWork(60_000) // at once: the enqueue above was made while nobody waited
      const idle = yield* Effect.fork(outbox.awaitWork(1_000))
      yield* TestClock.adjust(999)
      assert.isTrue(Option.isNone(yield* Fiber.poll(idle)), "woken without an enqueue")
      yield* TestClock.adjust(1)
      yield* Fiber.join(idle)
    })
  )

  test(
    "outbox: the reply target is kept on payloads, dead letters and replays (absent → null)",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const slack = { kind: "slack" as const, url: "https://hooks.slack.com/commands/T1/2/x" }
      const discord = {
        kind: "discord" as const,
        applicationId: "app-1",
        token: Redacted.make("tok-ü"),
        apiBaseUrl: "http://127.0.0.1:1/api/v10"
      }
      yield* outbox.enqueue([
        payload("reply:us:1", 1, { replyTarget: slack }),
        payload("reply:us:1", 2, { replyTarget: discord }),
        payload("reply:us:1", 3, { replyTarget: null }),
        payload("reply:us:1", 4)
      ])
      const plain = (t: Outbox.StoredPayload["replyTarget"]) =>
        t == null ? t : t.kind === "slack" ? t : { ...t, token: Redacted.value(t.token) }
      const expected = [slack, { ...discord, token: "tok-ü" }, null, null]
      const head = yield* outbox.head("reply:us:1", 10)
      assert.deepStrictEqual(head.map((p) => plain(p.replyTarget)), expected)
      const token = head[1]!.replyTarget
      assert.isTrue(token?.kind === "discord" && String(token.token) === "<redacted>")
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 1 })
      for (const p of head) {
        yield* outbox.deadLetter({ mailbox: "reply:us:1", owner: "w", now: 10 }, p.id, {
          reason: "x",
          lastStatus: null,
          lastBody: null
        })
      }
      assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => plain(d.replyTarget)), expected)
      yield* outbox.replay("all", 20)
      assert.deepStrictEqual((yield* outbox.head("reply:us:1", 10)).map((p) => plain(p.replyTarget)), expected)
    })
  )

  test(
    "outbox: claimReply is once per delivery id; remember is first-writer-wins until the record expires",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      assert.isTrue(yield* outbox.claimReply("d-1", 1))
      assert.isFalse(yield* outbox.claimReply("d-1", 2))
      assert.isTrue(yield* outbox.claimReply("d-2", 3))
      const claims = yield* Effect.all(Array.from({ length: 8 }, (_, i) => outbox.claimReply("d-3", i)), {
        concurrency: "unbounded"
      })
      assert.strictEqual(claims.filter((c) => c).length, 1)

      assert.isTrue(yield* outbox.remember("ev-1", { now: 100, until: 200 }))
      assert.isFalse(yield* outbox.remember("ev-1", { now: 150, until: 250 }))
      assert.isFalse(yield* outbox.remember("ev-1", { now: 199, until: 299 }))
      assert.isTrue(yield* outbox.remember("ev-2", { now: 150, until: 250 }))
      // expired at 200: written again, and in force until the new expiry
      assert.isTrue(yield* outbox.remember("ev-1", { now: 200, until: 300 }))
      assert.isFalse(yield* outbox.remember("ev-1", { now: 299, until: 399 }))
      yield* outbox.forget("ev-1")
      assert.isTrue(yield* outbox.remember("ev-1", { now: 299, until: 399 }))
      yield* outbox.forget("never-seen")
      const racing = yield* Effect.all(
        Array.from({ length: 8 }, () => outbox.remember("ev-3", { now: 500, until: 600 })),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(racing.filter((r) => r).length, 1)
    })
  )

  test(
    "outbox: the trace context is kept on payloads, dead letters and replays (absent → null)",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
      yield* outbox.enqueue([
        payload("trace:us:1", 1, { traceContext: traced }),
        payload("trace:us:1", 2, { traceContext: null }),
        payload("trace:us:1", 3)
      ])
      const expected = [traced, null, null]
      const head = yield* outbox.head("trace:us:1", 10)
      assert.deepStrictEqual(head.map((p) => p.traceContext), expected)
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 100, limit: 1 })
      for (const p of head) {
        yield* outbox.deadLetter({ mailbox: "trace:us:1", owner: "w", now: 10 }, p.id, {
          reason: "x",
          lastStatus: null,
          lastBody: null
        })
      }
      assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => d.traceContext), expected)
      yield* outbox.replay("all", 20)
      assert.deepStrictEqual((yield* outbox.head("trace:us:1", 10)).map((p) => p.traceContext), expected)
    })
  )

  // -- fair, adaptive delivery (docs/routing.md#fair-adaptive-delivery) ------------------------------------------

  test(
    "sequences: 1, 2, 3, … per mailbox in id order across group-commit batches; mailboxes count apart; big batches",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* Effect.all(
        Array.from(
          { length: 40 },
          (_, i) =>
            outbox.enqueue([payload("seq:us:1", i), payload(`seq:us:${2 + (i % 2)}`, i), payload("seq:us:1", i)])
        ),
        { concurrency: "unbounded", discard: true }
      )
      // one call past 400 payloads (PostgreSQL writes it in chunks inside one transaction), three mailboxes mixed
      yield* outbox.enqueue(Array.from({ length: 450 }, (_, i) => payload(`seq:de:${i % 3}`, i)))
      const numbers = (mailbox: string) =>
        Effect.map(outbox.head(mailbox, 1000), (head) => {
          assert.deepStrictEqual(head.map((p) => p.id), [...head.map((p) => p.id)].sort((a, b) => a - b))
          return head.map((p) => p.sequence)
        })
      const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
      assert.deepStrictEqual(yield* numbers("seq:us:1"), upTo(80))
      assert.deepStrictEqual(yield* numbers("seq:us:2"), upTo(20))
      assert.deepStrictEqual(yield* numbers("seq:us:3"), upTo(20))
      for (const m of ["seq:de:0", "seq:de:1", "seq:de:2"]) assert.deepStrictEqual(yield* numbers(m), upTo(150))
      // the same mailbox after the big batch: counts on; a new name starts at 1
      yield* outbox.enqueue([payload("seq:de:0", 1), payload("seq:new:1", 1)])
      assert.deepStrictEqual((yield* numbers("seq:de:0")).slice(-1), [151])
      assert.deepStrictEqual(yield* numbers("seq:new:1"), [1])
    })
  )

  test(
    "sequences: kept on retry; a dead letter keeps its number (the gap shows); a replay keeps it, after higher ones",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const m = "gap:us:1"
      yield* outbox.enqueue([payload(m, 1), payload(m, 2), payload(m, 3)])
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 1000, limit: 1 })
      const lease = { mailbox: m, owner: "w", now: 20 }
      yield* outbox.retry(lease, 1, { nextAttemptAt: 30, error: "HTTP 503" })
      yield* outbox.retry(lease, 1, { nextAttemptAt: 40, error: "HTTP 503" })
      const seqs = Effect.map(outbox.head(m, 10), (head) => head.map((p) => [p.id, p.sequence, p.attempts]))
      assert.deepStrictEqual(yield* seqs, [[1, 1, 2], [2, 2, 0], [3, 3, 0]])
      yield* outbox.deadLetter(lease, 2, { reason: "permanent_failure", lastStatus: 400, lastBody: null })
      assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => [d.id, d.sequence]), [[2, 2]])
      yield* outbox.complete(lease, 1)
      yield* outbox.enqueue([payload(m, 4)])
      // 2 is missing between 1 (delivered) and 3: a region sees the gap
      assert.deepStrictEqual(yield* seqs, [[3, 3, 0], [4, 4, 0]])
      assert.strictEqual(yield* outbox.replay("all", 50), 1)
      // the replayed payload: a new id at the tail, its old number (below the region's high-water mark)
      assert.deepStrictEqual(yield* seqs, [[3, 3, 0], [4, 4, 0], [5, 2, 0]])
      // a replay does not advance the counter
      yield* outbox.enqueue([payload(m, 5)])
      assert.deepStrictEqual((yield* seqs).slice(-1), [[6, 5, 0]])
    })
  )

  test(
    "sequences: the counter outlives the mailbox row (emptied, released, removed, back: it counts on)",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const m = "back:us:1"
      yield* outbox.enqueue([payload(m, 1), payload(m, 2)])
      yield* outbox.claim({ owner: "w", now: 10, leaseMs: 1000, limit: 1 })
      const lease = { mailbox: m, owner: "w", now: 20 }
      yield* outbox.complete(lease, 1)
      yield* outbox.complete(lease, 2)
      yield* outbox.release(lease, 20)
      assert.deepStrictEqual(yield* outbox.mailboxes, [])
      yield* outbox.enqueue([payload(m, 30)])
      assert.deepStrictEqual((yield* outbox.head(m, 10)).map((p) => [p.id, p.sequence]), [[3, 3]])
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => [b.mailbox, b.depth, b.nextAttemptAt]), [[m, 1, 30]])
    })
  )

  test(
    "tenants: a payload's own (o:), else i:<integration id>, else m:<mailbox>; a mailbox keeps its first one's",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue([
        payload("bitbucket:us:1", 1, { integrationId: null, tenant: "o:7" }),
        payload("bitbucket:us:1", 2, { integrationId: null, tenant: "o:8" }),
        payload("jira:us:1", 3, { integrationId: 42 as IntegrationId }),
        payload("jira:us:1", 4, { integrationId: 43 as IntegrationId, tenant: null }),
        payload("custom:us:1", 5, { integrationId: null })
      ])
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => [b.mailbox, b.tenant]), [
        ["bitbucket:us:1", "o:7"],
        ["custom:us:1", "m:custom:us:1"],
        ["jira:us:1", "i:42"]
      ])
      const tenants = (mailbox: string) => Effect.map(outbox.head(mailbox, 10), (head) => head.map((p) => p.tenant))
      assert.deepStrictEqual(yield* tenants("bitbucket:us:1"), ["o:7", "o:8"])
      assert.deepStrictEqual(yield* tenants("jira:us:1"), ["i:42", "i:43"])
      // a later enqueue does not change a row's tenant
      yield* outbox.enqueue([payload("bitbucket:us:1", 6, { integrationId: null, tenant: "o:9" })])
      assert.deepStrictEqual((yield* outbox.mailboxes).map((b) => b.tenant), ["o:7", "m:custom:us:1", "i:42"])
      const claimed = yield* outbox.claim({ owner: "w", now: 10, leaseMs: 1000, limit: 5 })
      assert.deepStrictEqual(claimed, [
        { mailbox: "bitbucket:us:1", tenant: "o:7" },
        { mailbox: "jira:us:1", tenant: "i:42" },
        { mailbox: "custom:us:1", tenant: "m:custom:us:1" }
      ])
      // dead letters keep their tenant; a replay into a removed row makes it again with the first one's
      const lease = { mailbox: "bitbucket:us:1", owner: "w", now: 20 }
      for (const id of [2, 1, 6]) {
        yield* outbox.deadLetter(lease, id, { reason: "permanent_failure", lastStatus: 404, lastBody: null })
      }
      yield* outbox.release(lease, 20)
      assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => [d.id, d.tenant]), [[1, "o:7"], [2, "o:8"], [
        6,
        "o:9"
      ]])
      assert.strictEqual(yield* outbox.replay([2, 1], 30), 2)
      assert.deepStrictEqual(
        (yield* outbox.mailboxes).filter((b) => b.mailbox === "bitbucket:us:1").map((b) => [b.tenant, b.depth]),
        [["o:7", 2]]
      )
    })
  )

  const fairBoxes = Effect.flatMap(Outbox.Outbox, (outbox) =>
    outbox.enqueue([
      // tenant i:1: five mailboxes, all older than the others
      ...[1, 2, 3, 4, 5].map((n) => payload(`a:us:${n}`, n, { integrationId: 1 as IntegrationId })),
      payload("b:us:1", 10, { integrationId: 2 as IntegrationId }),
      payload("b:us:2", 11, { integrationId: 2 as IntegrationId }),
      payload("c:us:1", 20, { integrationId: null, tenant: "o:7" })
    ]))

  test(
    "fair claim: beyond its share a tenant waits for the others' due mailboxes; held counts; 0 = oldest due first",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* fairBoxes
      // leases of 0 ms run out at the next ms: every claim below sees all eight mailboxes
      let now = 100
      const claim = (options: Partial<Outbox.ClaimOptions> & { readonly limit: number }) =>
        Effect.map(outbox.claim({ owner: "w", now: now++, leaseMs: 0, ...options }), names)
      assert.deepStrictEqual(yield* claim({ limit: 4 }), ["a:us:1", "a:us:2", "a:us:3", "a:us:4"])
      assert.deepStrictEqual(yield* claim({ limit: 4, fairShare: 0 }), ["a:us:1", "a:us:2", "a:us:3", "a:us:4"])
      assert.deepStrictEqual(
        yield* claim({ limit: 4, fairShare: 0, held: new Map([["i:1", 9]]) }),
        ["a:us:1", "a:us:2", "a:us:3", "a:us:4"]
      )
      // within the share: oldest due first across tenants; then the rest, by rank
      assert.deepStrictEqual(yield* claim({ limit: 7, fairShare: 2 }), [
        "a:us:1",
        "a:us:2",
        "b:us:1",
        "b:us:2",
        "c:us:1",
        "a:us:3",
        "a:us:4"
      ])
      assert.deepStrictEqual(yield* claim({ limit: 2, fairShare: 2 }), ["a:us:1", "a:us:2"])
      // share 1: round robin over the tenants (rank 2: a2, b2; rank 3: a3; …)
      assert.deepStrictEqual(yield* claim({ limit: 8, fairShare: 1 }), [
        "a:us:1",
        "b:us:1",
        "c:us:1",
        "a:us:2",
        "b:us:2",
        "a:us:3",
        "a:us:4",
        "a:us:5"
      ])
      // what the owner holds counts: i:1 at its share already goes after everyone else
      assert.deepStrictEqual(yield* claim({ limit: 5, fairShare: 2, held: new Map([["i:1", 2]]) }), [
        "b:us:1",
        "b:us:2",
        "c:us:1",
        "a:us:1",
        "a:us:2"
      ])
      assert.deepStrictEqual(
        yield* claim({ limit: 6, fairShare: 2, held: new Map([["i:2", 1], ["o:7", 0], ["i:99", 5]]) }),
        // rank 3 (a3: its third; b2: one held + its second) in due order, then a4 at rank 4
        ["a:us:1", "a:us:2", "b:us:1", "c:us:1", "a:us:3", "b:us:2"]
      )
      // and the claim returns the tenants
      assert.deepStrictEqual(
        yield* outbox.claim({ owner: "w", now: now++, leaseMs: 0, limit: 3, fairShare: 1 }),
        [{ mailbox: "a:us:1", tenant: "i:1" }, { mailbox: "b:us:1", tenant: "i:2" }, {
          mailbox: "c:us:1",
          tenant: "o:7"
        }]
      )
    })
  )

  test(
    "fair claim: leased mailboxes are no candidates (places count the claimable ones); work-conserving",
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* fairBoxes
      // a1 and b1 are held by another worker
      assert.deepStrictEqual(names(yield* outbox.claim({ owner: "x", now: 100, leaseMs: 1000, limit: 1 })), ["a:us:1"])
      yield* outbox.claim({ owner: "y", now: 100, leaseMs: 0, limit: 8 }) // expires at once, changes nothing
      const taken = yield* outbox.claim({ owner: "x", now: 101, leaseMs: 1000, limit: 1, fairShare: 1 })
      assert.deepStrictEqual(names(taken), ["a:us:2"])
      assert.deepStrictEqual(
        names(yield* outbox.claim({ owner: "w", now: 102, leaseMs: 1000, limit: 4, fairShare: 1 })),
        ["a:us:3", "b:us:1", "c:us:1", "a:us:4"]
      )
      const held = (n: number) => new Map([["i:1", n]])
      assert.deepStrictEqual(
        names(yield* outbox.claim({ owner: "w", now: 103, leaseMs: 1000, limit: 1, fairShare: 1, held: held(2) })),
        ["b:us:2"]
      )
      // only tenant i:1 is due: a worker past its share still takes every due mailbox (no slot stays idle)
      yield* outbox.enqueue([6, 7].map((n) => payload(`a:us:${n}`, 50, { integrationId: 1 as IntegrationId })))
      assert.deepStrictEqual(
        names(yield* outbox.claim({ owner: "w", now: 104, leaseMs: 1000, limit: 4, fairShare: 1, held: held(5) })),
        ["a:us:5", "a:us:6", "a:us:7"]
      )
      assert.deepStrictEqual(yield* outbox.claim({ owner: "w", now: 105, leaseMs: 1000, limit: 4, fairShare: 1 }), [])
    })
  )
}
