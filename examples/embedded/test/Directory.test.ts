// The example's directory layers, property-tested in isolation: core's `Gateway` over the application's own
// `IntegrationRepo` / `OrgRepo` / `RegionDirectory` (no HTTP, no store), for generated sets of customers.
import type { WebhookRequest } from "@cellgate/core"
import { Gateway, jiraServerToken, Outbox, Providers, RegionClient, VolumeGate } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Redacted } from "effect"
import type { Customer } from "../src/Customers.js"
import * as Customers from "../src/Customers.js"
import * as Directory from "../src/Directory.js"

const regions = [{ name: "eu", url: "http://eu.example.test" }, { name: "us", url: "http://us.example.test" }]

const customers: fc.Arbitrary<ReadonlyArray<Customer>> = fc.uniqueArray(
  fc.record({
    id: fc.integer({ min: 1, max: 50 }),
    region: fc.constantFrom("eu", "us"),
    secret: fc.option(fc.string({ minLength: 1, maxLength: 24 }), { nil: undefined })
  }),
  { selector: (c) => c.id, minLength: 1, maxLength: 8 }
).map((rows) =>
  rows.map((r) => ({
    id: r.id,
    slug: `customer-${r.id}`,
    region: r.region,
    jiraServer: r.secret === undefined
      ? undefined
      : { serverId: `jira-${r.id}`, webhookSecret: Redacted.make(r.secret) }
  }))
)

const body = new TextEncoder().encode(JSON.stringify({
  changelog: { items: [{ field: "status", fieldId: "status", fromString: "Open", toString: "Done" }], id: 1 },
  issue: { key: "APP-1", project: { key: "APP", id: "10000" }, fields: {} }
}))

const webhook = async (serverId: string, secret: string): Promise<WebhookRequest> => ({
  method: "POST",
  path: `/extensions/jira-server/issue-updated/${await jiraServerToken(serverId, secret)}/`,
  headers: { "content-type": "application/json" },
  body,
  receivedAt: 1_700_000_000_000
})

/** The gateway over the example's directory; the region client is never called (Jira Server webhooks are queued). */
const gatewayOver = (all: ReadonlyArray<Customer>) =>
  Gateway.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(
      Directory.layer,
      Providers.layer(),
      Outbox.layerMemory,
      VolumeGate.layerNoop,
      Layer.succeed(RegionClient.RegionClient, { send: () => Effect.dieMessage("never called") })
    )),
    Layer.provide(Customers.layerMemory({ customers: all, regions }))
  )

describe("the example's directory, under core's Gateway", () => {
  it.effect.prop("a connected customer's webhook is queued once, for its own region and mailbox", [
    customers,
    fc.nat()
  ], ([all, pick]) =>
    Effect.gen(function*() {
      const connected = all.filter((c) => c.jiraServer !== undefined)
      if (connected.length === 0) return
      const customer = connected[pick % connected.length]!
      const request = yield* Effect.promise(() =>
        webhook(customer.jiraServer!.serverId, Redacted.value(customer.jiraServer!.webhookSecret))
      )
      const gateway = yield* Gateway.Gateway
      const outcome = yield* gateway.route(request)
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag === "Enqueue") {
        assert.deepStrictEqual(
          outcome.decision.targets.map((t): { region: string; mailbox: string } => ({
            region: t.region,
            mailbox: t.mailbox
          })),
          [
            { region: customer.region, mailbox: `jira_server:${customer.region}:${customer.id}` }
          ]
        )
      }
      const response = yield* gateway.handle(request)
      assert.strictEqual(response.status, 202)
      const mailboxes = yield* Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes)
      assert.deepStrictEqual(mailboxes.map((m) => [m.mailbox, m.depth]), [
        [`jira_server:${customer.region}:${customer.id}`, 1]
      ])
    }).pipe(Effect.provide(gatewayOver(all))), { fastCheck: { numRuns: 60 } })

  it.effect.prop("a webhook signed with another secret, or for no connection, is never queued", [
    customers,
    fc.string({ minLength: 1, maxLength: 24 }),
    fc.integer({ min: 1, max: 60 })
  ], ([all, wrong, id]) =>
    Effect.gen(function*() {
      const target = all.find((c) => c.id === id)
      if (target?.jiraServer !== undefined && Redacted.value(target.jiraServer.webhookSecret) === wrong) return
      const request = yield* Effect.promise(() => webhook(`jira-${id}`, wrong))
      const gateway = yield* Gateway.Gateway
      const response = yield* gateway.handle(request)
      assert.notStrictEqual(response.status, 202)
      assert.deepStrictEqual(yield* Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes), [])
    }).pipe(Effect.provide(gatewayOver(all))), { fastCheck: { numRuns: 60 } })
})
