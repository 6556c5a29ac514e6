// docs/routing.md#discord (and the decisions of §8.3): Ed25519 signatures over timestamp + raw body (the corpus vector, and
// keys generated with WebCrypto at test time), PING at the edge, commands to the first region, components to all,
// the follow-up reply target and its host check. The hybrid's interpretation is tested elsewhere.
import { Memory } from "@cellgate/adapters"
import type { Hybrid, RouteOutcome } from "@cellgate/core"
import { Discord, Metrics, Provider, Providers } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Metric, Option, Redacted } from "effect"
import { webcrypto } from "node:crypto"
import { withGateway } from "../support/Gateway.js"
import { call, closedPort } from "../support/Http.js"
import {
  assertControl,
  assertError,
  bytes,
  directory,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  text
} from "./support.js"

const vector = JSON.parse(fixture("discord", "ping.signed_vector.derived.json"))
const pingBody = fixture("discord", "ping.json")
const commandBody = fixture("discord", "user_command_interaction.json")
const GUILD = "772904309264089089"
const PATH = "/extensions/discord/interactions/"

const subtle = webcrypto.subtle
const hex = (buffer: ArrayBuffer) => Buffer.from(buffer).toString("hex")

/** A fresh Ed25519 key pair (WebCrypto), the public key as hex. */
const keyPair = async () => {
  const pair = (await subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair
  return { privateKey: pair.privateKey, publicKeyHex: hex(await subtle.exportKey("raw", pair.publicKey)) }
}
const sign = async (privateKey: webcrypto.CryptoKey, timestamp: string, body: Uint8Array) =>
  hex(await subtle.sign({ name: "Ed25519" }, privateKey, Buffer.concat([Buffer.from(timestamp), body])))

let keys: Awaited<ReturnType<typeof keyPair>>
let otherKeys: Awaited<ReturnType<typeof keyPair>>
beforeAll(async () => {
  keys = await keyPair()
  otherKeys = await keyPair()
})

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 300, provider: "discord", externalId: GUILD },
    { id: 301, provider: "discord", externalId: "1111" },
    { id: 302, provider: "discord", externalId: "2222", status: "disabled" as const },
    { id: 303, provider: "slack", externalId: "3333" }
  ],
  organizationIntegrations: [
    { organizationId: 2, integrationId: 300 },
    { organizationId: 1, integrationId: 300 },
    { organizationId: 1, integrationId: 301, status: "disabled" as const },
    { organizationId: 1, integrationId: 302 },
    { organizationId: 1, integrationId: 303 }
  ]
}

const layer = (discord: () => Provider.DiscordOptions = () => ({ publicKey: keys.publicKeyHex })) =>
  Layer.unwrapEffect(Effect.sync(() =>
    withGateway(Layer.mergeAll(
      Memory.layer(directory(directoryJson)),
      Providers.layer(),
      Layer.succeed(Provider.ProviderSecrets, { webhookSecret: () => Option.none(), discord: discord() })
    ))
  ))

const signed = (
  body: string | Uint8Array,
  options: { key?: webcrypto.CryptoKey; timestamp?: string; headers?: Record<string, string> } = {}
) =>
  Effect.promise(async () => {
    const timestamp = options.timestamp ?? String(Math.floor(Date.now() / 1000))
    const signature = await sign(options.key ?? keys.privateKey, timestamp, bytes(body))
    return request(PATH, {
      body,
      headers: { "x-signature-ed25519": signature, "x-signature-timestamp": timestamp, ...options.headers }
    })
  })
const routeSigned = (body: string, options: Parameters<typeof signed>[1] = {}) =>
  Effect.flatMap(signed(body, options), route)
const handleSigned = (body: string, options: Parameters<typeof signed>[1] = {}) =>
  Effect.flatMap(signed(body, options), handle)

const interaction = (fields: Record<string, unknown>) =>
  JSON.stringify({ application_id: "775799577604522054", token: "TOKEN_1", guild_id: GUILD, ...fields })

const hybridOf = (outcome: RouteOutcome): Hybrid => {
  assert.strictEqual(outcome.decision._tag, "Hybrid", outcome.reason)
  return outcome.decision as Hybrid
}

const assertUnauthorized = (response: { status: number; body: string | Uint8Array }) => {
  assert.strictEqual(response.status, 401)
  assert.strictEqual(text(response.body), "")
}

describe("Discord signature (Ed25519, WebCrypto)", () => {
  it.effect("the corpus vector verifies; one byte of the body changed, it does not", () =>
    Effect.gen(function*() {
      const { headers } = vector
      const body = bytes(pingBody)
      assert.isTrue(
        yield* Discord.verifySignature(
          vector.public_key_hex,
          headers["X-Signature-Ed25519"],
          headers["X-Signature-Timestamp"],
          body
        )
      )
      const altered = new Uint8Array(body)
      altered[10] = altered[10]! ^ 1
      assert.isFalse(
        yield* Discord.verifySignature(
          vector.public_key_hex,
          headers["X-Signature-Ed25519"],
          headers["X-Signature-Timestamp"],
          altered
        )
      )
      // the timestamp is signed too
      assert.isFalse(
        yield* Discord.verifySignature(vector.public_key_hex, headers["X-Signature-Ed25519"], "1700000001", body)
      )
    }))

  it.effect("the corpus PING through the gateway: 200 {\"type\":1}, whatever its age (Discord has no window)", () =>
    Effect.gen(function*() {
      const response = yield* handle(request(PATH, {
        body: pingBody,
        headers: {
          "x-signature-ed25519": vector.headers["X-Signature-Ed25519"],
          "x-signature-timestamp": vector.headers["X-Signature-Timestamp"]
        }
      }))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["content-type"], "application/json")
      assert.deepStrictEqual(JSON.parse(text(response.body)), vector.expected_response.body)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer(() => ({ publicKey: vector.public_key_hex })))))

  it.effect.prop(
    "any body signed at test time verifies; one byte changed, or another key, it does not",
    [
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.stringMatching(/^\d{1,12}$/)
    ],
    ([body, at, delta, timestamp]) =>
      Effect.gen(function*() {
        const signature = yield* Effect.promise(() => sign(keys.privateKey, timestamp, body))
        assert.isTrue(yield* Discord.verifySignature(keys.publicKeyHex, signature, timestamp, body))
        assert.isFalse(yield* Discord.verifySignature(otherKeys.publicKeyHex, signature, timestamp, body))
        const altered = new Uint8Array(body)
        const i = at % body.length
        altered[i] = (altered[i]! + delta) % 256
        assert.isFalse(yield* Discord.verifySignature(keys.publicKeyHex, signature, timestamp, altered))
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect("a malformed key or signature never verifies (and never throws)", () =>
    Effect.gen(function*() {
      const signature = yield* Effect.promise(() => sign(keys.privateKey, "1", bytes("{}")))
      for (
        const [key, sig] of [
          ["zz", signature],
          [keys.publicKeyHex.slice(2), signature],
          [keys.publicKeyHex, signature.slice(2)],
          [keys.publicKeyHex, `${signature}00`],
          [keys.publicKeyHex, "x".repeat(128)],
          ["00".repeat(32), signature]
        ]
      ) {
        assert.isFalse(yield* Discord.verifySignature(key!, sig!, "1", bytes("{}")))
      }
    }))
})

describe("Discord verification at the edge: 401, empty body", () => {
  it.effect("missing signature, missing timestamp, wrong signature, another key, not hex", () =>
    Effect.gen(function*() {
      const good = yield* signed(interaction({ type: 2 }))
      const without = (name: string) => ({
        ...good,
        headers: Object.fromEntries(Object.entries(good.headers).filter(([k]) => k !== name))
      })
      assertUnauthorized(yield* handle(without("x-signature-ed25519")))
      assertUnauthorized(yield* handle(without("x-signature-timestamp")))
      assertUnauthorized(yield* handle({ ...good, headers: { ...good.headers, "x-signature-timestamp": "1" } }))
      assertUnauthorized(yield* handle({ ...good, body: bytes(interaction({ type: 3 })) }))
      assertUnauthorized(yield* handleSigned(interaction({ type: 2 }), { key: otherKeys.privateKey }))
      assertUnauthorized(yield* handle({ ...good, headers: { ...good.headers, "x-signature-ed25519": "not hex" } }))
      // a forged PING is not answered either
      assertUnauthorized(yield* handleSigned(pingBody, { key: otherKeys.privateKey }))
      const outcome = yield* route(without("x-signature-ed25519"))
      assert.strictEqual(outcome.reason, "missing X-Signature-Ed25519")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("no public key configured: 401 for every interaction, PING included", () =>
    Effect.gen(function*() {
      for (const body of [pingBody, interaction({ type: 2 }), interaction({ type: 3 })]) {
        assertUnauthorized(yield* handleSigned(body))
        assert.strictEqual((yield* routeSigned(body)).reason, "no public key configured (providers.discord.publicKey)")
      }
    }).pipe(Effect.provide(layer(() => ({})))))

  it.effect("other paths under the prefix are Control", () =>
    Effect.gen(function*() {
      for (const p of ["link-identity/abc/", "unlink-identity/abc/", "configure/", "interactions", "interactions/x/"]) {
        assertControl(yield* handle(request(`/extensions/discord/${p}`, { body: pingBody })))
      }
    }).pipe(Effect.provide(layer())))
})

describe("Discord interactions", () => {
  it.effect("PING (type 1) is answered {\"type\":1} at the edge, with or without a guild, known or not", () =>
    Effect.gen(function*() {
      for (
        const body of [
          pingBody,
          JSON.stringify({ type: 1, guild_id: "999" }),
          JSON.stringify({ type: 1, guild_id: GUILD })
        ]
      ) {
        const response = yield* handleSigned(body)
        assert.strictEqual(response.status, 200)
        assert.strictEqual(text(response.body), "{\"type\":1}")
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("an application command (type 2, the corpus interaction): Hybrid first, deferred ephemeral fallback", () =>
    Effect.gen(function*() {
      const outcome = yield* routeSigned(commandBody)
      const h = hybridOf(outcome)
      assert.strictEqual(h.mode, "first")
      assert.deepStrictEqual<unknown>(h.regions, ["eu", "us"])
      assert.deepStrictEqual<unknown>(outcome.organizations, [1, 2])
      assert.strictEqual(h.integrationId, 300)
      assert.strictEqual(h.provider, "discord")
      assert.strictEqual(h.mailboxPrefix, "discord")
      assert.strictEqual(h.budgetMs, 2000)
      assert.strictEqual(h.store, true)
      assert.strictEqual(h.dedupe, null)
      assert.deepStrictEqual(h.fallback, {
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{\"type\":5,\"data\":{\"flags\":64}}"
      })
      assert.strictEqual(h.replyTarget?.kind, "discord")
      if (h.replyTarget?.kind !== "discord") return
      assert.strictEqual(h.replyTarget.applicationId, "775799577604522054")
      assert.strictEqual(Redacted.value(h.replyTarget.token), "UNIQUE_TOKEN")
      assert.strictEqual(h.replyTarget.apiBaseUrl, "https://discord.com/api/v10")
      // the interaction token is a credential: it never prints
      assert.notInclude(JSON.stringify(h), "UNIQUE_TOKEN")
      assert.notInclude(String(h), "UNIQUE_TOKEN")
    }).pipe(Effect.provide(layer())))

  it.effect("a message component (type 3): Hybrid to all regions", () =>
    Effect.gen(function*() {
      const h = hybridOf(yield* routeSigned(interaction({ type: 3 })))
      assert.strictEqual(h.mode, "all")
      assert.deepStrictEqual<unknown>(h.regions, ["eu", "us"])
    }).pipe(Effect.provide(layer())))

  it.effect("any other type (autocomplete, modal submit, none): Control", () =>
    Effect.gen(function*() {
      for (const type of [4, 5, 0, "2", null]) {
        assertControl(yield* handleSigned(interaction({ type })))
      }
      assertControl(yield* handleSigned("not json"))
    }).pipe(Effect.provide(layer())))

  it.effect("no guild, an unknown or disabled guild, another provider's id, no active organization: 400", () =>
    Effect.gen(function*() {
      assertError(yield* handleSigned(interaction({ type: 2, guild_id: undefined })), 400, "missing_identity")
      for (const guild of ["999", "2222", "3333"]) {
        assertError(yield* handleSigned(interaction({ type: 2, guild_id: guild })), 400, "integration_not_found")
      }
      assertError(yield* handleSigned(interaction({ type: 3, guild_id: "1111" })), 400, "no_active_organization")
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("syncBudgetMs comes from providers.discord", () =>
    Effect.gen(function*() {
      assert.strictEqual(hybridOf(yield* routeSigned(interaction({ type: 2 }))).budgetMs, 900)
    }).pipe(Effect.provide(layer(() => ({ publicKey: keys.publicKeyHex, syncBudgetMs: 900 })))))

  it.effect("without an application id or token (or one that could change the follow-up URL): no reply target", () =>
    Effect.gen(function*() {
      for (
        const fields of [
          { application_id: undefined },
          { token: undefined },
          { token: "" },
          { token: "a/../../b" },
          { token: "a?b" },
          { application_id: "../1" },
          { application_id: "12a" }
        ]
      ) {
        assert.strictEqual(hybridOf(yield* routeSigned(interaction({ type: 2, ...fields }))).replyTarget, null)
      }
    }).pipe(Effect.provide(layer())))
})

describe("Discord reply targets: apiBaseUrl and replyHosts", () => {
  it("the defaults: discord.com/api/v10, its hostname the one reply host", () => {
    assert.deepStrictEqual(Discord.settings({}), {
      publicKey: Option.none(),
      syncBudgetMs: 2000,
      apiBaseUrl: "https://discord.com/api/v10",
      replyHosts: ["discord.com"]
    })
    assert.deepStrictEqual(Discord.settings({ apiBaseUrl: "http://127.0.0.1:4010/api/" }).replyHosts, ["127.0.0.1"])
  })

  it.effect("an apiBaseUrl whose host is in replyHosts (default: its own hostname) gets a reply target", () =>
    Effect.gen(function*() {
      const target = hybridOf(yield* routeSigned(interaction({ type: 2 }))).replyTarget
      assert.strictEqual(target?.kind, "discord")
      // the follow-up goes where the configuration said when the request came (a trailing slash dropped)
      if (target?.kind === "discord") assert.strictEqual(target.apiBaseUrl, "http://127.0.0.1:4010/api")
    }).pipe(Effect.provide(layer(() => ({ publicKey: keys.publicKeyHex, apiBaseUrl: "http://127.0.0.1:4010/api/" })))))

  it.effect("an apiBaseUrl outside the configured replyHosts: stored without a reply target, counted, logged", () =>
    Effect.gen(function*() {
      const refused = Metrics.repliesTotal("discord", "refused_host")
      const before = (yield* Metric.value(refused)).count
      const outcome = yield* routeSigned(interaction({ type: 2 }))
      const h = hybridOf(outcome)
      assert.strictEqual(h.replyTarget, null)
      assert.strictEqual(h.store, true)
      assert.deepStrictEqual(outcome.event, {
        message: "discord.reply_host_refused",
        fields: { reply_host: "api.example.test" }
      })
      assert.strictEqual((yield* Metric.value(refused)).count - before, 1)
    }).pipe(Effect.provide(layer(() => ({
      publicKey: keys.publicKeyHex,
      apiBaseUrl: "https://api.example.test/api",
      replyHosts: ["discord.com"]
    })))))
})

describe("Discord through real HTTP (the edge answers)", () => {
  let server: EmbeddedServer
  beforeAll(async () => {
    const closed = await closedPort()
    server = await makeServer({
      store: { kind: "memory", ephemeral: true },
      providers: { discord: { publicKey: vector.public_key_hex } },
      directory: { ...directoryJson, regions: REGIONS.map((r) => ({ ...r, url: `http://127.0.0.1:${closed}` })) }
    }, { port: 0, worker: false, log: () => {} })
  })
  afterAll(async () => {
    await server?.close()
  })

  it("the corpus PING: 200 {\"type\":1}; the same PING with a wrong signature: 401, empty body", async () => {
    const headers = {
      "content-type": "application/json",
      "x-signature-ed25519": vector.headers["X-Signature-Ed25519"],
      "x-signature-timestamp": vector.headers["X-Signature-Timestamp"]
    }
    const ok = await call(server.url, PATH, { body: pingBody, headers })
    assert.strictEqual(ok.status, 200)
    assert.deepStrictEqual(JSON.parse(ok.text), { type: 1 })
    const forged = await call(server.url, PATH, { body: pingBody.replace("1,", "1 ,"), headers })
    assert.strictEqual(forged.status, 401)
    assert.strictEqual(forged.text, "")
  })
})
