// Issue #10 item 5: small leaks. Jira Cloud answers every JWT that is not valid with one and the same 404 (a sender
// cannot tell a clientKey that exists from one that does not), and secrets are compared as fixed-length digests.
import { JiraCloud } from "@cellgate/core"
import { constantTimeEquals, secretMatches } from "@cellgate/core/providers/Common"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it, vi } from "@effect/vitest"
import { Effect, FastCheck as fc, Redacted } from "effect"
import * as Jose from "jose"
import { call } from "../support/Http.js"

const SHARED = "jira cloud shared secret for leaks"
const PATH = "/extensions/jira/issue-updated/"

let server: EmbeddedServer

beforeAll(async () => {
  server = await makeServer({
    server: { port: 0 },
    store: { kind: "memory", ephemeral: true },
    directory: {
      regions: [{ name: "us", url: "http://127.0.0.1:9" }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [
        { id: 1, provider: "jira", externalId: "exists", metadata: { sharedSecret: SHARED } },
        { id: 2, provider: "jira", externalId: "disabled", status: "disabled", metadata: { sharedSecret: SHARED } }
      ],
      organizationIntegrations: [{ organizationId: 1, integrationId: 1 }]
    }
  }, { worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
})

const sign = async (claims: Record<string, unknown>, secret = SHARED) =>
  new Jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(secret))

describe("Jira Cloud: one answer for every invalid JWT", () => {
  it("an unknown clientKey and a bad signature of a real one are answered alike", async () => {
    const qsh = await Effect.runPromise(JiraCloud.queryStringHash("POST", PATH))
    const exp = Math.floor(Date.now() / 1000) + 600
    const tokens: Record<string, string> = {
      "unknown clientKey": await sign({ iss: "nobody", exp, qsh }),
      "disabled integration": await sign({ iss: "disabled", exp, qsh }),
      "real clientKey, wrong secret": await sign({ iss: "exists", exp, qsh }, "another secret"),
      "real clientKey, expired": await sign({ iss: "exists", exp: exp - 3600, qsh }),
      "real clientKey, wrong qsh": await sign({ iss: "exists", exp, qsh: "0".repeat(64) }),
      "no iss": await sign({ exp, qsh }),
      "not a JWT": "not-a-jwt"
    }
    const answers = new Map<string, string>()
    for (const [name, token] of Object.entries(tokens)) {
      const reply = await call(server.url, PATH, { body: "{}", headers: { authorization: `JWT ${token}` } })
      expect(reply.status, name).toBe(404)
      answers.set(name, reply.text)
    }
    expect(new Set(answers.values()).size, JSON.stringify(Object.fromEntries(answers))).toBe(1)
    expect(JSON.parse([...answers.values()][0]!)).toEqual({ error: "not_found", message: JiraCloud.INVALID_JWT })
    // and a valid one still goes through
    const ok = await call(server.url, PATH, {
      body: "{}",
      headers: { authorization: `JWT ${await sign({ iss: "exists", exp, qsh })}` }
    })
    expect(ok.status).toBe(202)
  })
})

describe("constant-time comparison of secrets", () => {
  it.effect.prop("agrees with string equality", [fc.string(), fc.string()], ([a, b]) =>
    Effect.gen(function*() {
      expect(yield* constantTimeEquals(a, b)).toBe(a === b)
      expect(yield* constantTimeEquals(a, a)).toBe(true)
      expect(yield* secretMatches(a, Redacted.make(b))).toBe(a === b)
    }))

  it("compares fixed-length digests of both sides, also when the lengths differ (no early return)", async () => {
    const digest = vi.spyOn(crypto.subtle, "digest")
    const decoder = new TextDecoder()
    try {
      const expected = "the configured gitlab secret"
      for (const given of ["x", `${expected}, longer`, "the configured gitlab secreT"]) {
        digest.mockClear()
        expect(await Effect.runPromise(secretMatches(given, Redacted.make(expected)))).toBe(false)
        const hashed = digest.mock.calls.map(([, data]) => decoder.decode(data as Uint8Array))
        expect(hashed).toContain(given)
        expect(hashed).toContain(expected)
      }
    } finally {
      digest.mockRestore()
    }
  })
})
