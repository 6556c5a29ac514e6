// docs/routing.md#deadline-aware-hybrid as a property: whatever each region's timing and outcome on the live attempt, the provider is
// answered within the budget (plus a small margin), and a region that did not answer 2xx live gets exactly one stored
// copy with the live attempt's delivery id; when nobody answered 2xx live, the reply target gets exactly one reply.
import { Memory } from "@cellgate/adapters"
import type { IntegrationId, RegionName } from "@cellgate/core"
import {
  Delivery,
  DeliverySettings,
  Directory,
  Gateway,
  Hybrid,
  Outbox,
  Provider,
  ProviderRegistry,
  RegionClient,
  RegionTransportError,
  ReplyClient,
  VolumeGate
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck, Layer, Logger, LogLevel, Schema } from "effect"

const BUDGET = 120
const MARGIN = 150
const NAMES = ["a", "b", "c"] as const

interface Behaviour {
  readonly delayMs: number
  readonly outcome: "ok" | "error" | "refused"
}

const behaviour: FastCheck.Arbitrary<Behaviour> = FastCheck.record({
  delayMs: FastCheck.integer({ min: 0, max: 250 }),
  outcome: FastCheck.constantFrom("ok" as const, "error" as const, "refused" as const)
})

const caseArb = FastCheck.record({
  mode: FastCheck.constantFrom("first" as const, "all" as const),
  regions: FastCheck.subarray([...NAMES], { minLength: 1 }),
  live: FastCheck.tuple(behaviour, behaviour, behaviour)
})

const directory = Schema.decodeUnknownSync(Directory)({
  regions: NAMES.map((name) => ({ name, url: `http://${name}.test` }))
})

const encoder = new TextEncoder()

describe("hybrid property", () => {
  it.live.prop(
    "answered within the budget; not relayed live → one stored copy per region (same id), one reply",
    [caseArb],
    ([c]) =>
      Effect.gen(function*() {
        const regions = [...c.regions].sort() as Array<RegionName>
        const liveOk = new Set<string>() // regions whose live attempt answered 2xx (not interrupted)
        const liveIds = new Map<string, string>()
        const stored = new Map<string, Array<string>>()
        const replies: Array<string> = []
        const client = RegionClient.RegionClient.of({
          send: (region, request) => {
            const id = request.headers["x-cellgate-delivery-id"]!
            if (request.headers["x-cellgate-mailbox"] !== undefined) {
              return Effect.sync(() => {
                stored.set(region.name, [...(stored.get(region.name) ?? []), id])
                return { status: 200, headers: {}, body: encoder.encode(`{"text":"stored ${region.name}"}`) }
              })
            }
            liveIds.set(region.name, id)
            const b = c.live[NAMES.indexOf(region.name as (typeof NAMES)[number])]!
            return Effect.sleep(b.delayMs).pipe(
              Effect.zipRight(
                b.outcome === "refused"
                  ? Effect.fail(
                    new RegionTransportError({ region: region.name, kind: "connection", detail: "refused" })
                  )
                  : Effect.sync(() => {
                    if (b.outcome === "ok") liveOk.add(region.name)
                    return {
                      status: b.outcome === "ok" ? 200 : 503,
                      headers: {},
                      body: encoder.encode(`live ${region.name}`)
                    }
                  })
              )
            )
          }
        })
        const provider: Provider.Provider = {
          name: "hybrid_test",
          routes: ["x/"],
          match: Provider.pathMatcher([["x", /^x\/$/]]),
          route: () =>
            Effect.succeed({
              provider: "hybrid_test",
              decision: new Hybrid({
                regions,
                mode: c.mode,
                budgetMs: BUDGET,
                provider: "hybrid_test",
                integrationId: 3 as IntegrationId,
                mailboxPrefix: "hybrid_test",
                fallback: { status: 200, headers: {}, body: "" },
                store: true,
                replyTarget: { kind: "slack", url: "https://hooks.slack.com/commands/T1/1/x" },
                dedupe: null
              }),
              reason: "hybrid",
              integration: null,
              organizations: [],
              regions
            })
        }
        const env = Layer.provideMerge(
          Gateway.layer,
          Layer.mergeAll(
            Memory.layer(directory),
            Layer.succeed(RegionClient.RegionClient, client),
            ProviderRegistry.layer([provider]),
            VolumeGate.layerNoop,
            Layer.succeed(ReplyClient.ReplyClient, {
              send: (request) =>
                Effect.sync(() => {
                  replies.push(request.body)
                  return { status: 200, headers: {}, body: new Uint8Array(0) }
                })
            })
          )
        )
        yield* Effect.gen(function*() {
          const gateway = yield* Gateway.Gateway
          const outbox = yield* Outbox.Outbox
          const started = Date.now()
          const response = yield* gateway.handle({
            method: "POST",
            path: "/extensions/hybrid-test/x/",
            headers: {},
            body: encoder.encode("{}"),
            receivedAt: started
          })
          const elapsed = Date.now() - started
          assert.isBelow(elapsed, BUDGET + MARGIN, `answered after ${elapsed} ms`)
          assert.strictEqual(response.status, 200)
          for (let round = 0; round < 5; round++) {
            if ((yield* outbox.mailboxes).length === 0) break
            const claimed = yield* outbox.claim({ owner: "w", now: Date.now(), leaseMs: 30_000, limit: 10 })
            for (const c of claimed) yield* Delivery.drainMailbox(c.mailbox, "w")
          }
          assert.deepStrictEqual(yield* outbox.deadLetters, [])
          const targets = c.mode === "first" ? regions.slice(0, 1) : regions
          const sync = c.mode === "first" ? liveOk.has(targets[0]!) : targets.some((r) => liveOk.has(r))
          assert.strictEqual(response.headers["x-cellgate-region"] !== undefined, sync)
          for (const r of targets) {
            const copies = stored.get(r) ?? []
            if (liveOk.has(r)) assert.deepStrictEqual(copies, [], `region ${r} answered live`)
            else assert.deepStrictEqual(copies, [liveIds.get(r)], `region ${r}: one stored copy, the live id`)
          }
          for (const r of NAMES) if (!targets.includes(r as RegionName)) assert.isUndefined(stored.get(r))
          // a reply only when the user got the fallback: once, whichever copy completed first
          assert.strictEqual(replies.length, sync ? 0 : 1)
        }).pipe(Effect.provide(env))
      }).pipe(
        DeliverySettings.withSettings({ backoffBaseMs: 0 }),
        Effect.provide(Logger.minimumLogLevel(LogLevel.None))
      ),
    { timeout: 60_000, fastCheck: { numRuns: 40 } }
  )
})
