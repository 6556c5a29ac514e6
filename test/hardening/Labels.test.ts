// Issue #10 item 2: metric labels come only from bounded sets (known provider names, `control`, `unknown`), never a
// raw path segment — or made-up provider names grow the gateway's memory and `/metrics` without end.
import { Metrics, ProviderRegistry, Providers } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { call } from "../support/Http.js"

const registry = Effect.runSync(Effect.provide(ProviderRegistry.ProviderRegistry, Providers.layer()))
const KNOWN = new Set(registry.all.map((p) => p.name))
const BOUNDED = new Set([...KNOWN, "control", "unknown"])

/** Random provider segments: letters, digits, `-`, `_`, percent-escapes, some near a real name. */
const segment = fc.oneof(
  fc.stringMatching(/^[a-z0-9_-]{1,24}$/),
  fc.stringMatching(/^(jira|github|gitlab)[-_][a-z0-9%]{1,12}$/),
  fc.string({ minLength: 1, maxLength: 16 }).map(encodeURIComponent)
)

let server: EmbeddedServer

beforeAll(async () => {
  server = await makeServer({
    server: { port: 0, maxBodyBytes: 64 },
    store: { kind: "memory", ephemeral: true },
    directory: { regions: [], organizations: [], integrations: [], organizationIntegrations: [] }
  }, { worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
})

/** The `provider` label values of one metric in `/metrics`. */
const providerLabels = (text: string, metric: string): Set<string> => {
  const out = new Set<string>()
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue
    const m = /provider="((?:[^"\\]|\\.)*)"/.exec(line)
    if (m !== null) out.add(m[1]!)
  }
  return out
}

describe("provider labels", () => {
  it("1 000 made-up provider names (and their 413s) leave the label set bounded", async () => {
    const names = fc.sample(segment, { numRuns: 1_000, seed: 10 })
    const before = (await call(server.url, "/metrics")).text.length
    for (const [i, name] of names.entries()) {
      const path = `/extensions/${name}/webhook/${i}/`
      // every tenth one is too large: the 413 path counts before routing
      const body = i % 10 === 0 ? Buffer.alloc(100, 97) : "{}"
      const reply = await call(server.url, path, { body })
      expect(reply.status).toBeLessThan(500)
    }
    const text = (await call(server.url, "/metrics")).text
    for (const metric of ["cellgate_requests_total", "cellgate_decisions_total"]) {
      const labels = providerLabels(text, metric)
      for (const label of labels) expect(BOUNDED.has(label), `${metric}: ${label}`).toBe(true)
      expect(labels.has("unknown")).toBe(true)
    }
    expect(providerLabels(text, "cellgate_requests_total")).toContain("unknown")
    expect(text).toMatch(/cellgate_requests_total\{provider="unknown",status="413"\} \d+/)
    // the text does not grow with the names sent (a few new series at most)
    expect(text.length - before).toBeLessThan(4_000)
  })

  it("known providers keep their names; no provider is `control`", async () => {
    await call(server.url, "/extensions/github/webhook/", { body: "{}" })
    await call(server.url, "/extensions/jira-server/issue-updated/x/", { body: Buffer.alloc(100, 97) })
    await call(server.url, "/api/0/x/", { body: "{}" })
    const text = (await call(server.url, "/metrics")).text
    expect(text).toMatch(/cellgate_requests_total\{provider="github",status="\d+"\} \d+/)
    expect(text).toMatch(/cellgate_requests_total\{provider="jira_server",status="413"\} \d+/)
    expect(text).toMatch(/cellgate_decisions_total\{kind="control",provider="control"\} \d+/)
  })

  it.prop("Metrics.providerLabel maps every segment into the bounded set", [segment], ([name]) => {
    const label = Metrics.pathProviderLabel(`/extensions/${name}/x/`, registry)
    expect(BOUNDED.has(label)).toBe(true)
    expect(Metrics.providerLabel(name.replaceAll("-", "_"), registry)).toBe(label)
  })

  it.prop(
    "a /plugins/… path is labelled plugins before routing (the 413 path), whatever follows",
    [segment],
    ([name]) => {
      expect(Metrics.pathProviderLabel(`/plugins/${name}/x/`, registry)).toBe("plugins")
    }
  )
})
