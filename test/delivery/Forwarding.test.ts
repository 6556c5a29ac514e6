import { forwardableHeaders, outgoingHeaders, relayableHeaders, sign, verifyForwarded } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { makeRegion } from "./support.js"

const vector = JSON.parse(
  readFileSync(new URL("../fixtures/standard-webhooks/vector.json", import.meta.url), "utf8")
) as {
  readonly secret: string
  readonly headers: Record<string, string>
  readonly body: string
  readonly tolerance_seconds: number
}
const enc = (s: string) => new TextEncoder().encode(s)
const vectorTime = Number(vector.headers["webhook-timestamp"])

describe("verifyForwarded", () => {
  it("accepts the Standard Webhooks vector (webhook-* header names)", async () => {
    const r = await verifyForwarded({ headers: vector.headers, body: enc(vector.body) }, vector.secret, {
      nowSeconds: vectorTime + 10
    })
    assert.deepStrictEqual(r, { ok: true, deliveryId: vector.headers["webhook-id"]!, timestamp: vectorTime })
  })

  it.effect("sign reproduces the vector's signature", () =>
    Effect.map(
      sign(vector.secret, vector.headers["webhook-id"]!, vectorTime, enc(vector.body)),
      (s) => assert.strictEqual(s, vector.headers["webhook-signature"])
    ))

  it("rejects a changed body, a changed id, a wrong secret, and a timestamp outside the tolerance", async () => {
    const opts = { nowSeconds: vectorTime }
    const bad = async (
      headers: Record<string, string>,
      body: string,
      secret = vector.secret,
      o = opts
    ) => (await verifyForwarded({ headers, body: enc(body) }, secret, o))
    assert.deepStrictEqual(await bad(vector.headers, vector.body + " "), { ok: false, reason: "bad_signature" })
    assert.deepStrictEqual(await bad({ ...vector.headers, "webhook-id": "msg_other" }, vector.body), {
      ok: false,
      reason: "bad_signature"
    })
    assert.deepStrictEqual(await bad(vector.headers, vector.body, "whsec_" + btoa("another key of some length")), {
      ok: false,
      reason: "bad_signature"
    })
    assert.deepStrictEqual(
      await bad(vector.headers, vector.body, vector.secret, { nowSeconds: vectorTime + vector.tolerance_seconds + 1 }),
      { ok: false, reason: "timestamp_out_of_tolerance" }
    )
    assert.deepStrictEqual(
      await bad(vector.headers, vector.body, vector.secret, { nowSeconds: vectorTime - vector.tolerance_seconds - 1 }),
      { ok: false, reason: "timestamp_out_of_tolerance" }
    )
    const { ["webhook-signature"]: _, ...noSig } = vector.headers
    assert.deepStrictEqual(await bad(noSig, vector.body), { ok: false, reason: "missing_headers" })
  })

  it("accepts any of several signatures (key rotation), header names in any case", async () => {
    const headers = {
      "Webhook-Id": vector.headers["webhook-id"]!,
      "WEBHOOK-TIMESTAMP": vector.headers["webhook-timestamp"]!,
      "webhook-signature": `v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ${vector.headers["webhook-signature"]}`
    }
    const r = await verifyForwarded({ headers, body: enc(vector.body) }, vector.secret, { nowSeconds: vectorTime })
    assert.isTrue(r.ok)
  })

  it("verifies what outgoingHeaders signs, and does not mix cellgate's headers with a provider's webhook-*", () =>
    Effect.gen(function*() {
      const secret = "whsec_" + btoa("0123456789abcdef0123456789abcdef")
      const region = makeRegion("us", "http://us.example", secret)
      const body = enc(`{"issue":{"id":1}}`)
      const now = Date.parse("2026-03-01T12:00:00Z")
      // the provider signed with Standard Webhooks too: its headers pass through untouched
      const headers = yield* outgoingHeaders(region, { ...vector.headers, "content-type": "application/json" }, body, {
        deliveryId: "d-1",
        attempt: 3,
        mailbox: "jira_server:us:1"
      }, now)
      assert.strictEqual(headers["webhook-signature"], vector.headers["webhook-signature"])
      assert.strictEqual(headers["x-cellgate-timestamp"], String(now / 1000))
      assert.strictEqual(headers["x-cellgate-attempt"], "3")
      const r = yield* Effect.promise(() => verifyForwarded({ headers, body }, secret, { nowSeconds: now / 1000 }))
      assert.deepStrictEqual(r, { ok: true, deliveryId: "d-1", timestamp: now / 1000 })
      // without a region secret nothing is signed: no x-cellgate-signature / -timestamp
      const plain = yield* outgoingHeaders(makeRegion("eu", "http://eu.example"), {}, body, {
        deliveryId: "d-2",
        attempt: 1
      }, now)
      assert.deepStrictEqual(plain, { "x-cellgate-delivery-id": "d-2", "x-cellgate-attempt": "1" })
    }))
})

describe("header rules", () => {
  const incoming = {
    Host: "gateway.example",
    "Content-Length": "12",
    "content-encoding": "gzip",
    "x-forwarded-proto": "https",
    connection: "keep-alive, X-Private-Hop",
    "keep-alive": "timeout=5",
    "proxy-authenticate": "x",
    "proxy-authorization": "y",
    te: "trailers",
    trailers: "x",
    "transfer-encoding": "chunked",
    upgrade: "h2c",
    "x-private-hop": "secret-to-the-proxy",
    "X-Cellgate-Delivery-Id": "spoofed",
    "x-cellgate-signature": "v1,spoofed",
    "x-cellgate-mailbox": "spoofed",
    "Content-Type": "application/json",
    "X-Hub-Signature-256": "sha256=abc",
    "user-agent": "GitHub-Hookshot/1"
  }

  it("forwardableHeaders keeps only end-to-end, non-cellgate headers, lower-cased", () => {
    assert.deepStrictEqual(forwardableHeaders(incoming), {
      "content-type": "application/json",
      "x-hub-signature-256": "sha256=abc",
      "user-agent": "GitHub-Hookshot/1"
    })
  })

  it("outgoingHeaders replaces spoofed x-cellgate-* with cellgate's own", () =>
    Effect.gen(function*() {
      const h = yield* outgoingHeaders(makeRegion("us", "http://us.example"), incoming, enc("{}"), {
        deliveryId: "real",
        attempt: 1,
        mailbox: "github:us:1"
      }, 0)
      assert.strictEqual(h["x-cellgate-delivery-id"], "real")
      assert.strictEqual(h["x-cellgate-mailbox"], "github:us:1")
      assert.isUndefined(h["x-cellgate-signature"])
      assert.isUndefined(h["x-private-hop"])
      assert.isUndefined(h["host"])
    }))

  it("relayableHeaders drops hop-by-hop headers of an answer but keeps x-cellgate-*", () => {
    assert.deepStrictEqual(
      relayableHeaders({
        Connection: "close, x-hop",
        "x-hop": "1",
        "content-type": "text/plain",
        "x-cellgate-region": "us"
      }),
      { "content-type": "text/plain", "x-cellgate-region": "us" }
    )
  })
})
