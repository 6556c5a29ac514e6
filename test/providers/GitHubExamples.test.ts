// Every example body of @octokit/webhooks-examples, signed at test time, through handle: github.com examples
// through `github`, the GHES ones through `github_enterprise`.
import { Memory } from "@cellgate/adapters"
import { GitHub, Outbox, Providers } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { createRequire } from "node:module"
import { withGateway } from "../support/Gateway.js"
import { bytes, directory, handle, REGIONS, request, route, secretsLayer, text } from "./support.js"

interface Definition {
  readonly name: string
  readonly examples: ReadonlyArray<Record<string, any>>
}

const require = createRequire(import.meta.url)
const SECRET = "test-secret"
const HOST = "ghe.example.com"

const sets: ReadonlyArray<readonly [string, "github" | "github_enterprise", ReadonlyArray<Definition>]> = [
  ["api.github.com", "github", require("@octokit/webhooks-examples")],
  ...["ghes-31", "ghes-32", "ghes-33", "ghes-34", "ghes-35"].map((v) =>
    [v, "github_enterprise" as const, require(`@octokit/webhooks-examples/${v}/index.json`)] as const
  )
]

const installationIds = new Set<number>()
for (const [, , defs] of sets) {
  for (const d of defs) {
    for (const e of d.examples) if (typeof e.installation?.id === "number") installationIds.add(e.installation.id)
  }
}
const ids = [...installationIds]
const directoryJson = {
  regions: REGIONS,
  organizations: [{ id: 1, slug: "us", region: "us" }, { id: 2, slug: "eu", region: "eu" }],
  integrations: ids.flatMap((id, i) => [
    { id: 1 + 2 * i, provider: "github", externalId: String(id) },
    { id: 2 + 2 * i, provider: "github_enterprise", externalId: `${HOST}:${id}` }
  ]),
  organizationIntegrations: ids.flatMap((_, i) =>
    [1 + 2 * i, 2 + 2 * i].flatMap((integrationId) => [
      { organizationId: 1, integrationId },
      { organizationId: 2, integrationId }
    ])
  )
}

// One log line per webhook, ~1400 of them: not what this test looks at.
const quiet = Logger.minimumLogLevel(LogLevel.None)

const decoded = directory(directoryJson)
/** The memory store, its outbox counting what is written (listing mailboxes after each of ~700 webhooks is slow). */
const countingLayer = (provider: string, written: { count: number }) => {
  const outbox = Memory.makeOutbox()
  const counting = Outbox.Outbox.of({
    ...outbox,
    enqueue: (payloads) =>
      Effect.zipRight(Effect.sync(() => (written.count += payloads.length)), outbox.enqueue(payloads))
  })
  return withGateway(Layer.mergeAll(
    Memory.layer(decoded),
    Layer.succeed(Outbox.Outbox, counting),
    Providers.layer(),
    secretsLayer({ [provider]: SECRET }),
    quiet
  ))
}

const expected = (event: string, example: Record<string, any>): "control" | 400 | "dropped" | 202 => {
  if (event === "installation" || event === "installation_repositories") return "control"
  if (typeof example.installation?.id !== "number") return 400
  if (GitHub.droppedEvent(event, example.action) !== undefined) return "dropped"
  return 202
}

describe("@octokit/webhooks-examples coverage", () => {
  it("the examples exercise every answer: Control, 400, the dropped 202 and the stored 202", () => {
    const counts = new Map<string, number>()
    for (const [, , defs] of sets) {
      for (const d of defs) {
        for (const e of d.examples) {
          const k = String(expected(d.name, e))
          counts.set(k, (counts.get(k) ?? 0) + 1)
        }
      }
    }
    for (const k of ["control", "400", "dropped", "202"]) assert.isAbove(counts.get(k) ?? 0, 0, k)
  })
})

for (const [set, provider, defs] of sets) {
  describe(`@octokit/webhooks-examples ${set} through ${provider}`, () => {
    const path = `/extensions/${provider.replaceAll("_", "-")}/webhook/`
    for (const def of defs) {
      const written = { count: 0 }
      it.effect(`${def.name} (${def.examples.length} examples)`, () =>
        Effect.forEach(def.examples, (example, i) =>
          Effect.gen(function*() {
            const body = JSON.stringify(example)
            const req = request(path, {
              body,
              headers: {
                "x-github-event": def.name,
                "x-github-delivery": `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`,
                "x-hub-signature-256": yield* GitHub.signature(SECRET, bytes(body)),
                ...(provider === "github_enterprise" ? { "x-github-enterprise-host": HOST } : {})
              }
            })
            const want = expected(def.name, example)
            const label = `${set} ${def.name} #${i} (${example.action ?? "no action"}): want ${want}`
            const outcome = yield* route(req)
            written.count = 0
            const response = yield* handle(req)
            const stored = written.count
            assert.isBelow(response.status, 500, label)
            switch (want) {
              case "control":
                assert.strictEqual(outcome.decision._tag, "Control", label)
                assert.strictEqual(response.status, 404, label)
                break
              case 400:
                assert.strictEqual(response.status, 400, label)
                assert.strictEqual(JSON.parse(text(response.body)).error, "missing_identity", label)
                break
              case "dropped":
                assert.strictEqual(response.status, 202, label)
                assert.strictEqual(outcome.reason, `dropped:${def.name}`, label)
                break
              case 202:
                assert.strictEqual(response.status, 202, label)
                assert.strictEqual(outcome.decision._tag, "Enqueue", label)
                break
            }
            assert.strictEqual(stored, want === 202 ? 2 : 0, label)
          })).pipe(Effect.provide(countingLayer(provider, written))))
    }
  })
}
