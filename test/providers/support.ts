// Helpers for the provider tests: fixtures, the directory every provider test routes against, requests, layers.
import { Memory } from "@cellgate/adapters"
import type { WebhookRequest, WebhookResponse } from "@cellgate/core"
import { Directory, Outbox, Provider, Providers } from "@cellgate/core"
import { assert } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { readFileSync } from "node:fs"
import { withGateway } from "../support/Gateway.js"

export { handle, route } from "../support/Gateway.js"

export const fixture = (provider: string, name: string): string =>
  readFileSync(new URL(`../fixtures/${provider}/${name}`, import.meta.url), "utf8")

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const bytes = (body: string | Uint8Array): Uint8Array => (typeof body === "string" ? encoder.encode(body) : body)
export const text = (body: string | Uint8Array): string => (typeof body === "string" ? body : decoder.decode(body))

export const request = (
  path: string,
  options: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {}
): WebhookRequest => ({
  method: options.method ?? "POST",
  path,
  headers: { "content-type": "application/json", ...options.headers },
  body: bytes(options.body ?? ""),
  receivedAt: 0
})

export const directory = (json: unknown): Directory => Schema.decodeUnknownSync(Directory)(json)

/** App-level secrets (`providers.<p>.webhookSecret`). */
export const secretsLayer = (secrets: Record<string, string>) =>
  Layer.succeed(
    Provider.ProviderSecrets,
    Provider.ProviderSecrets.of({
      webhookSecret: (p) => Option.map(Option.fromNullable(secrets[p]), (s) => Redacted.make(s))
    })
  )

/** A fresh memory store over `json`, the built-in providers, and optional app secrets. */
export const testServices = (json: unknown, secrets: Record<string, string> = {}) =>
  Layer.mergeAll(Memory.layer(directory(json)), Providers.layer(), secretsLayer(secrets))

/** `testServices` with the gateway built over them. */
export const testLayer = (json: unknown, secrets: Record<string, string> = {}) =>
  withGateway(testServices(json, secrets))

/** `[mailbox, region, depth]` of every mailbox of the outbox. */
export const stored = Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes).pipe(
  Effect.map((boxes) => boxes.map((m): ReadonlyArray<string | number> => [m.mailbox, m.region, m.depth]))
)

/** An error answer `{"error","message"}` with `status`. */
export const assertError = (response: WebhookResponse, status: number, error?: string, message?: string) => {
  assert.strictEqual(response.status, status)
  assert.strictEqual(response.headers["content-type"], "application/json")
  const body = JSON.parse(text(response.body))
  assert.hasAllKeys(body, ["error", "message"])
  if (error !== undefined) assert.strictEqual(body.error, error)
  if (message !== undefined) assert.strictEqual(body.message, message)
}

/** 202, empty body. */
export const assertAccepted = (response: WebhookResponse) => {
  assert.strictEqual(response.status, 202)
  assert.strictEqual(text(response.body), "")
}

/** Control without an upstream: 404 `not_found` from the control side. */
export const assertControl = (response: WebhookResponse) => assertError(response, 404, "not_found")

export const REGIONS = [
  { name: "us", url: "http://us.test" },
  { name: "eu", url: "http://eu.test" },
  { name: "de", url: "http://de.test" }
]

export const ORGANIZATIONS = [
  { id: 1, slug: "acme-us", region: "us" },
  { id: 2, slug: "acme-eu", region: "eu" },
  { id: 3, slug: "acme-us-2", region: "us" },
  { id: 4, slug: "acme-de", region: "de" },
  { id: 5, slug: "lost", region: "mars" }
]
