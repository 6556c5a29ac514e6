// `Gateway.layer`: its requirement type is exactly the ports (pinned at compile time), and the ports are looked up
// once, when the layer is built: `handle` and `route` then run with an EMPTY context.
import type {
  IntegrationRepo,
  OrgRepo,
  RegionDirectory,
  RegionNotFound,
  RouteOutcome,
  StoreUnavailable,
  WebhookRequest,
  WebhookResponse
} from "@cellgate/core"
import {
  ControlHandler,
  Directory,
  DirectoryStore,
  Gateway,
  jiraServerToken,
  Outbox,
  Provider,
  ProviderRegistry,
  Providers,
  RegionClient,
  VolumeGate
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, FiberRef, Layer, Logger, Option, Redacted, Schema } from "effect"
import { request, text } from "../support/Requests.js"

// ---- compile time: the exact types of `Gateway.layer` -------------------------------------------------------------

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

type Ports =
  | ProviderRegistry.ProviderRegistry
  | IntegrationRepo.IntegrationRepo
  | OrgRepo.OrgRepo
  | RegionDirectory.RegionDirectory
  | VolumeGate.VolumeGate
  | Outbox.Outbox
  | RegionClient.RegionClient

// each line fails to compile if the type drifts (a requirement added or removed, an error channel opened)
const requirementsArePinned: Equals<Layer.Layer.Context<typeof Gateway.layer>, Ports> = true
const outputIsTheGateway: Equals<Layer.Layer.Success<typeof Gateway.layer>, Gateway.Gateway> = true
const buildNeverFails: Equals<Layer.Layer.Error<typeof Gateway.layer>, never> = true
const handleNeedsNothing: Equals<ReturnType<Gateway.Gateway["Type"]["handle"]>, Effect.Effect<WebhookResponse>> = true
const routeNeedsNothing: Equals<
  ReturnType<Gateway.Gateway["Type"]["route"]>,
  Effect.Effect<RouteOutcome, RegionNotFound | StoreUnavailable>
> = true

// ---- run time ----------------------------------------------------------------------------------------------------

const SECRET = "a jira server webhook secret"

const directory = Schema.decodeUnknownSync(Directory)({
  regions: [{ name: "us", url: "http://us.invalid" }, { name: "eu", url: "http://eu.invalid" }],
  organizations: [{ id: 1, slug: "acme-us", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
  integrations: [
    { id: 7, provider: "jira_server", externalId: "jira-7", metadata: { webhookSecret: SECRET } },
    { id: 8, provider: "gitlab", externalId: "gitlab.test:g" }
  ],
  organizationIntegrations: [
    { organizationId: 1, integrationId: 7 },
    { organizationId: 2, integrationId: 7 },
    { organizationId: 1, integrationId: 8 }
  ]
})

const noRegionClient = Layer.succeed(
  RegionClient.RegionClient,
  RegionClient.RegionClient.of({ send: () => Effect.die("no request is forwarded in these tests") })
)

/** The ports in memory (core's own memory layers), without a control side. */
const ports = Layer.mergeAll(
  Providers.layer(),
  DirectoryStore.layerMemory(directory),
  VolumeGate.layerMemory,
  Outbox.layerMemory,
  noRegionClient
)

/** Builds the gateway (and returns it with the outbox it writes to) in the test's scope. */
const build = (services: Layer.Layer<Ports> = ports) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.provideMerge(Gateway.layer, services))
    return { gateway: Context.get(context, Gateway.Gateway), outbox: Context.get(context, Outbox.Outbox) }
  })

const jiraServerRequest = (token: string): WebhookRequest =>
  request(`/extensions/jira-server/issue-updated/${token}/`, {
    body: JSON.stringify({ changelog: { items: [{ field: "status" }] }, issue: { id: "10001" } })
  })

/** Runs `effect` with an empty context: nothing the request's fiber holds can stand in for a port. */
const withEmptyContext = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.locally(effect, FiberRef.currentContext, Context.empty())

describe("Gateway.layer", () => {
  it("pins its types (checked by tsc)", () => {
    assert.isTrue(requirementsArePinned && outputIsTheGateway && buildNeverFails)
    assert.isTrue(handleNeedsNothing && routeNeedsNothing)
  })

  it.scoped("handle works when the context given per request is empty: the layer captured the ports", () =>
    Effect.gen(function*() {
      const { gateway, outbox } = yield* build()
      const token = yield* Effect.promise(() => jiraServerToken("jira-7", Redacted.make(SECRET)))
      const response = yield* withEmptyContext(gateway.handle(jiraServerRequest(token)))
      assert.strictEqual(response.status, 202, text(response.body))
      const mailboxes = yield* outbox.mailboxes
      assert.deepStrictEqual(mailboxes.map((m) => m.mailbox).sort(), ["jira_server:eu:7", "jira_server:us:7"])
    }))

  it.scoped("route works with an empty context too, and decides without writing", () =>
    Effect.gen(function*() {
      const { gateway, outbox } = yield* build()
      const token = yield* Effect.promise(() => jiraServerToken("jira-7", Redacted.make(SECRET)))
      const outcome = yield* withEmptyContext(gateway.route(jiraServerRequest(token)))
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      assert.deepStrictEqual(outcome.regions.map(String), ["eu", "us"])
      assert.deepStrictEqual(yield* outbox.mailboxes, [])
    }))

  it.scoped("the control side answers 404 when no ControlHandler is provided", () =>
    Effect.gen(function*() {
      const { gateway } = yield* build()
      const response = yield* withEmptyContext(gateway.handle(request("/api/0/organizations/", { method: "GET" })))
      assert.strictEqual(response.status, 404)
      assert.strictEqual(JSON.parse(text(response.body)).error, "not_found")
    }))

  it.scoped("a ControlHandler present when the layer is built answers the control side (captured, not looked up)", () =>
    Effect.gen(function*() {
      const control = Layer.succeed(
        ControlHandler.ControlHandler,
        ControlHandler.ControlHandler.of({
          handle: () => Effect.succeed({ status: 299, headers: {}, body: "from the control side" })
        })
      )
      const { gateway } = yield* build(Layer.merge(ports, control))
      const response = yield* withEmptyContext(gateway.handle(request("/api/0/organizations/", { method: "GET" })))
      assert.strictEqual(response.status, 299)
      assert.strictEqual(text(response.body), "from the control side")
    }))

  it.scoped("app secrets (ProviderSecrets) are read when the layer is built", () =>
    Effect.gen(function*() {
      const secrets = Layer.succeed(Provider.ProviderSecrets, {
        webhookSecret: (p) => (p === "github" ? Option.some(Redacted.make("app secret")) : Option.none())
      })
      const { gateway } = yield* build(Layer.merge(ports, secrets))
      // unsigned: refused with the app secret in force, though the request's context has no secrets at all
      const response = yield* withEmptyContext(
        gateway.handle(request("/extensions/github/webhook/", { body: JSON.stringify({ installation: { id: 1 } }) }))
      )
      assert.strictEqual(response.status, 401)
    }))

  it.scoped("the unverified warning is once per gateway, not once per module: a second gateway warns again", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const gitlab = request("/extensions/gitlab/webhook/", { headers: { "x-gitlab-token": "gitlab.test:g:x" } })
      for (let i = 0; i < 2; i++) {
        const { gateway } = yield* build()
        for (let j = 0; j < 3; j++) {
          const response = yield* gateway.handle(gitlab).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, capture))
          )
          assert.strictEqual(response.status, 202)
        }
      }
      assert.deepStrictEqual(warnings, [
        "provider routes unverified: no secret configured",
        "provider routes unverified: no secret configured"
      ])
    }))

  it.effect("ProviderRegistry.layer: a later provider of the same name wins", () =>
    Effect.gen(function*() {
      const registry = yield* ProviderRegistry.ProviderRegistry
      assert.deepStrictEqual(registry.get("p")?.routes, ["second"])
    }).pipe(Effect.provide(ProviderRegistry.layer([provider(["first"]), provider(["second"])]))))
})

function provider(routes: ReadonlyArray<string>): Provider.Provider {
  return { name: "p", routes, match: () => undefined, route: () => Effect.die("unused") }
}
