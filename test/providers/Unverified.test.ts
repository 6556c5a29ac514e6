// A provider without a configured secret routes unverified and says so once (per provider and process).
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import { assertAccepted, handle, REGIONS, request, testLayer } from "./support.js"

const directoryJson = {
  regions: REGIONS,
  organizations: [{ id: 1, slug: "acme", region: "us" }],
  integrations: [
    { id: 1, provider: "gitlab", externalId: "gitlab.test:g" },
    { id: 2, provider: "vsts", externalId: "collection" },
    { id: 3, provider: "github", externalId: "7" }
  ],
  organizationIntegrations: [1, 2, 3].map((integrationId) => ({ organizationId: 1, integrationId }))
}

describe("unverified routing", () => {
  it.effect("is logged once per provider, as a warning naming the missing secret", () =>
    Effect.gen(function*() {
      const warnings: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        if (logLevel._tag !== "Warning") return
        const a: Record<string, unknown> = {}
        for (const [k, v] of annotations) a[k] = v
        warnings.push({ message, annotations: a })
      })
      const run = Effect.gen(function*() {
        for (let i = 0; i < 3; i++) {
          assertAccepted(
            yield* handle(
              request("/extensions/gitlab/webhook/", { headers: { "x-gitlab-token": "gitlab.test:g:x" } })
            )
          )
          assertAccepted(
            yield* handle(request("/extensions/vsts/issue-updated/", {
              body: JSON.stringify({ resourceContainers: { collection: { id: "collection" } } })
            }))
          )
          assertAccepted(
            yield* handle(
              request("/extensions/github/webhook/", { body: JSON.stringify({ installation: { id: 7 } }) })
            )
          )
        }
      })
      yield* run.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      assert.deepStrictEqual(warnings.map((w) => w.annotations.provider), ["gitlab", "vsts", "github"])
      assert.deepStrictEqual(warnings.map((w) => w.annotations.key), [
        "integrations[].metadata.webhookSecret",
        "integrations[].metadata.webhookSecret",
        "providers.github.webhookSecret"
      ])
    }).pipe(Effect.provide(testLayer(directoryJson))))
})
