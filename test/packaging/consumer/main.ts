// THE CONSUMER PROGRAM of test/packaging/Pack.test.ts — the one file to change when the library API changes.
//
// It is copied into a fresh project that installed only the packed tarballs of @cellgate/core and
// @cellgate/adapters and its own `effect` (no database driver), type-checked there (strict, NodeNext) and run with
// node. It composes core's routing with the application's own directory layers (`IntegrationRepo`, `OrgRepo`,
// `RegionDirectory`) and the memory outbox, posts one Jira Server webhook and prints one JSON line, which the test
// reads: `{ "status": 202, "mailboxes": [...], "drivers": ... }`.
//
// `Gateway.layer` requires exactly the ports (no control side: it answers 404), so the composition below is all an
// application writes.
import { HttpRegionClient, Memory } from "@cellgate/adapters"
import type { WebhookRequest } from "@cellgate/core"
import {
  Gateway,
  Integration,
  IntegrationRepo,
  jiraServerToken,
  Organization,
  OrgRepo,
  Outbox,
  Providers,
  Region,
  RegionDirectory
} from "@cellgate/core"
import { Array as Arr, Effect, Layer, Logger, Option, Redacted, Schema } from "effect"

const SECRET = "a jira server webhook secret"

// The application's own directory: plain data decoded with core's schemas, served by its own layers.
const integrations = Schema.decodeUnknownSync(Schema.Array(Integration))([
  { id: 7, provider: "jira_server", externalId: "jira-7", metadata: { webhookSecret: SECRET } }
])
const organizations = Schema.decodeUnknownSync(Schema.Array(Organization))([
  { id: 1, slug: "acme-us", region: "us" },
  { id: 2, slug: "acme-eu", region: "eu" }
])
const links: ReadonlyArray<{ readonly organization: number; readonly integration: number }> = [
  { organization: 1, integration: 7 },
  { organization: 2, integration: 7 }
]
const regions = Schema.decodeUnknownSync(Schema.Array(Region))([
  { name: "us", url: "http://us.invalid" },
  { name: "eu", url: "http://eu.invalid" }
])

const IntegrationRepoLive = Layer.succeed(
  IntegrationRepo.IntegrationRepo,
  IntegrationRepo.IntegrationRepo.of({
    byId: (id) => Effect.succeed(Arr.findFirst(integrations, (i) => i.id === id)),
    byExternalId: (provider, externalId) =>
      Effect.succeed(Arr.findFirst(integrations, (i) => i.provider === provider && i.externalId === externalId))
  })
)

const OrgRepoLive = Layer.succeed(
  OrgRepo.OrgRepo,
  OrgRepo.OrgRepo.of({
    activeOrganizationIds: (integrationId) =>
      Effect.succeed(
        links.filter((l) => l.integration === integrationId).flatMap((l) =>
          Arr.filterMap(organizations, (o) => o.id === l.organization ? Option.some(o.id) : Option.none())
        )
      ),
    byIds: (ids) => Effect.succeed(organizations.filter((o) => ids.includes(o.id)))
  })
)

const RegionDirectoryLive = Layer.succeed(
  RegionDirectory.RegionDirectory,
  RegionDirectory.RegionDirectory.of({
    byName: (name) => Effect.succeed(Arr.findFirst(regions, (r) => r.name === name)),
    all: Effect.succeed(regions)
  })
)

const Ports = Layer.mergeAll(
  Providers.layer(),
  IntegrationRepoLive,
  OrgRepoLive,
  RegionDirectoryLive,
  Memory.volumeGateLayer,
  Memory.outboxLayer,
  HttpRegionClient.layer
)

// the gateway over the ports, and the ports kept (the program reads the outbox)
const Live = Layer.provideMerge(Gateway.layer, Ports)

const program = Effect.gen(function*() {
  const token = yield* Effect.promise(() => jiraServerToken("jira-7", Redacted.make(SECRET)))
  const request: WebhookRequest = {
    method: "POST",
    path: `/extensions/jira-server/issue-updated/${token}/`,
    headers: { "content-type": "application/json" },
    body: new TextEncoder().encode(JSON.stringify({
      changelog: { items: [{ field: "status", fromString: "To Do", toString: "Done" }] },
      issue: { id: "10001", key: "APP-1" }
    })),
    receivedAt: Date.now()
  }
  const gateway = yield* Gateway.Gateway
  const response = yield* gateway.handle(request)
  const mailboxes = yield* Effect.flatMap(Outbox.Outbox, (outbox) => outbox.mailboxes)
  const control = yield* gateway.handle({ ...request, path: "/api/0/organizations/" })
  return {
    status: response.status,
    mailboxes: mailboxes.map((m) => `${m.region}:${m.depth}`).sort(),
    control: control.status
  }
})

const result = await Effect.runPromise(
  program.pipe(Effect.provide(Live), Effect.provide(Logger.remove(Logger.defaultLogger)))
)
console.log(JSON.stringify(result))
