import { Memory } from "@cellgate/adapters"
import type { RegionClient } from "@cellgate/core"
import { Delivery, DeliverySettings, Directory, Outbox, Region, RegionName } from "@cellgate/core"
import { Clock, Effect, Layer, Redacted } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export const makeRegion = (name: string, url: string, secret?: string): Region =>
  new Region({
    name: RegionName.make(name),
    url,
    ...(secret === undefined ? {} : { secret: Redacted.make(secret) })
  })

let seq = 0

export const newPayload = (
  mailbox: string,
  options: {
    readonly provider?: string
    readonly region?: string
    readonly receivedAt?: number
    readonly path?: string
    readonly body?: string | Uint8Array
    readonly headers?: Record<string, string>
  } = {}
): Outbox.NewPayload => {
  const n = ++seq
  const body = options.body ?? `{"n":${n}}`
  return {
    mailbox,
    provider: options.provider ?? mailbox.split(":")[0]!,
    region: RegionName.make(options.region ?? mailbox.split(":")[1]!),
    integrationId: null,
    method: "POST",
    path: options.path ?? `/extensions/test/webhook/?n=${n}`,
    headers: options.headers ?? { "content-type": "application/json" },
    body: typeof body === "string" ? new TextEncoder().encode(body) : body,
    receivedAt: options.receivedAt ?? 0,
    deliveryId: `d-${n}`
  }
}

/** Enqueue with `receivedAt` = now. */
export const enqueueNow = (payloads: ReadonlyArray<Outbox.NewPayload>) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const now = yield* Clock.currentTimeMillis
    yield* outbox.enqueue(payloads.map((p) => ({ ...p, receivedAt: now })))
  })

/** Claims every due mailbox for `owner` and drains them one after the other. */
export const drainDue = (owner: string) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const settings = yield* DeliverySettings.DeliverySettings
    const now = yield* Clock.currentTimeMillis
    const claimed = yield* outbox.claim({ owner, now, leaseMs: settings.leaseMs, limit: 1000 })
    return yield* Effect.forEach(claimed, (c) => Delivery.drainMailbox(c.mailbox, owner))
  })

export const status = (code: number, headers: Record<string, string> = {}, body = ""): RegionClient.RegionResponse => ({
  status: code,
  headers,
  body: new TextEncoder().encode(body)
})

/** Memory outbox + directory + recording region client answering with `answer`. */
export const memoryEnv = (
  regions: ReadonlyArray<Region>,
  answer?: (region: Region, request: RegionClient.OutgoingRequest) => Effect.Effect<RegionClient.RegionResponse, any>
) =>
  Layer.mergeAll(
    Memory.outboxLayer,
    Memory.directoryLayer(new Directory({ regions })),
    Memory.recordingRegionClient(answer)
  )

export interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly rawHeaders: ReadonlyArray<string>
  readonly body: Uint8Array
}

/**
 * A region stub on 127.0.0.1: `handle` answers each request (or leaves it hanging by returning `"hang"`). Closed with
 * the scope (hanging requests are destroyed).
 */
export const regionServer = (
  handle: (req: Received, index: number) => { status: number; headers?: Record<string, string>; body?: string } | "hang"
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly server: Http.Server }>(
      (resume) => {
        const received: Array<Received> = []
        const server = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (c: Buffer) => chunks.push(c))
          req.on("end", () => {
            const r: Received = {
              method: req.method ?? "",
              url: req.url ?? "",
              headers: req.headers,
              rawHeaders: req.rawHeaders,
              body: new Uint8Array(Buffer.concat(chunks))
            }
            const index = received.length
            received.push(r)
            const answer = handle(r, index)
            if (answer === "hang") return
            res.writeHead(answer.status, answer.headers ?? {})
            res.end(answer.body ?? "")
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server }))
        })
      }
    ),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
