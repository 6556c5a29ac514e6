// Building webhook requests for core tests.
import type { WebhookRequest } from "@cellgate/core"

const encoder = new TextEncoder()

export const bytes = (body: string | Uint8Array): Uint8Array => (typeof body === "string" ? encoder.encode(body) : body)

export const request = (
  path: string,
  options: { method?: string; body?: string | Uint8Array; headers?: Record<string, string>; receivedAt?: number } = {}
): WebhookRequest => ({
  method: options.method ?? "POST",
  path,
  headers: { "content-type": "application/json", ...options.headers },
  body: bytes(options.body ?? ""),
  receivedAt: options.receivedAt ?? 0
})

export const text = (body: string | Uint8Array): string =>
  typeof body === "string" ? body : new TextDecoder().decode(body)
