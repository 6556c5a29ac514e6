// Issue 12 (performance): what the hot path reuses instead of building per request, checked for being the same value
// as before — a rejected Jira Server token's outcome and a Jira Server Enqueue decision are built once and then
// reused (same object), and the redactor's memo answers exactly what the computation does (also past its capacity).
import { Memory } from "@cellgate/adapters"
import { jiraServerToken, Providers, Redaction } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer } from "effect"
import { directory } from "../support/Directory.js"
import { route, withGateway } from "../support/Gateway.js"
import { request } from "../support/Requests.js"

const SECRET = "hot path secret, long enough"
const EXTERNAL = "jira.example.org:hot"
const TestLive = () =>
  withGateway(Layer.mergeAll(
    Memory.layer(directory({
      regions: [{ name: "us", url: "http://us.test" }, { name: "eu", url: "http://eu.test" }],
      organizations: [{ id: 1, slug: "a", region: "us" }, { id: 2, slug: "b", region: "eu" }],
      integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 10 }]
    })),
    Providers.layer()
  ))
const path = (token: string) => `/extensions/jira-server/issue-updated/${token}/`
const body = JSON.stringify({ changelog: { id: 1 }, issue: { id: 7 } })

describe("hot path reuse", () => {
  it.effect("a rejected token's outcome is built once: the second answer is the same value", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.promise(() => jiraServerToken(EXTERNAL, "not the secret"))
      const first = yield* route(request(path(bad), { body }))
      const second = yield* route(request(path(bad), { body }))
      assert.strictEqual(second, first)
      assert.strictEqual(first.decision._tag, "Respond")
      assert.strictEqual(first.event?.message, "jira_server.no_integration")
      assert.isTrue(first.reason.startsWith("Could not validate JWT"))
    }).pipe(Effect.provide(TestLive())))

  it.effect("an Enqueue decision is built once per integration, regions and bucket", () =>
    Effect.gen(function*() {
      const good = yield* Effect.promise(() => jiraServerToken(EXTERNAL, SECRET))
      const first = yield* route(request(path(good), { body }))
      const second = yield* route(request(path(good), { body }))
      assert.strictEqual(second.decision, first.decision)
      assert.deepStrictEqual(
        first.decision._tag === "Enqueue" ? first.decision.targets.map((t) => [t.region, t.mailbox]) : [],
        [["eu", "jira_server:eu:10"], ["us", "jira_server:us:10"]]
      )
    }).pipe(Effect.provide(TestLive())))
})

describe("Redaction memo", () => {
  const segment = fc.oneof(
    fc.constantFrom("extensions", "jira-server", "issue-updated", "ISSUE_updated", "%2e", "a.b", "jwt"),
    fc.string({ maxLength: 12 })
  )
  const pathArb = fc.array(segment, { maxLength: 6 }).map((s) => "/" + s.join("/"))

  it.prop("a remembered answer is the computed one, also for its own output", [pathArb], ([p]) => {
    const first = Redaction.redactPath(p)
    assert.strictEqual(Redaction.redactPath(p), first)
    assert.strictEqual(Redaction.redactPath(first), first)
    assert.strictEqual(Redaction.redactText(`x ${p} y`), Redaction.redactText(`x ${p} y`))
  })

  it("past its capacity (emptied, then refilled) it still redacts", async () => {
    const token = await jiraServerToken(EXTERNAL, SECRET)
    for (let i = 0; i < 10_000; i++) Redaction.redactPath(`/x.${i}/issue-updated/t${i}/`)
    assert.strictEqual(Redaction.redactPath(path(token)), "/extensions/jira-server/issue-updated/<token>/")
    assert.strictEqual(
      Redaction.redactText(`failed ${path(token)}`),
      "failed /extensions/jira-server/issue-updated/<token>/"
    )
  })
})
