// Support for the telemetry tests: a local OTLP/HTTP receiver (node:http on 127.0.0.1:0 collecting the JSON POSTs
// to /v1/traces). The worker process and the throw-away PostgreSQL database are in ../support/Processes.ts.
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export interface OtlpSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
}

export interface Receiver {
  readonly url: string
  /** Every body received, as text (for "no secret appears"). */
  readonly bodies: Array<string>
  readonly spans: () => ReadonlyArray<OtlpSpan>
  readonly close: () => Promise<void>
}

type AnyValue = {
  stringValue?: string
  intValue?: number | string
  boolValue?: boolean
  doubleValue?: number
  arrayValue?: { values: Array<AnyValue> }
}

const value = (v: AnyValue): unknown =>
  v.stringValue ??
    (v.intValue !== undefined ? Number(v.intValue) : undefined) ??
    v.boolValue ??
    v.doubleValue ??
    v.arrayValue?.values.map(value)

/** The OTLP/HTTP receiver stub: answers 200 `{}` to every POST and keeps what came to /v1/traces. */
export const startReceiver = async (): Promise<Receiver> => {
  const bodies: Array<string> = []
  const server = Http.createServer((req, res) => {
    let body = ""
    req.on("data", (c: Buffer) => (body += c.toString("utf8")))
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") bodies.push(body)
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    bodies,
    spans: () =>
      bodies.flatMap((b) => {
        const data = JSON.parse(b) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: AnyValue }> }
            scopeSpans: Array<{
              spans: Array<{
                traceId: string
                spanId: string
                parentSpanId?: string
                name: string
                kind: number
                attributes: Array<{ key: string; value: AnyValue }>
              }>
            }>
          }>
        }
        return data.resourceSpans.flatMap((rs) => {
          const service = String(value(rs.resource.attributes.find((a) => a.key === "service.name")!.value))
          return rs.scopeSpans.flatMap((ss) =>
            ss.spans.map((s) => ({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId,
              name: s.name,
              kind: s.kind,
              attributes: Object.fromEntries(s.attributes.map((a) => [a.key, value(a.value)]))
            }))
          )
        })
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}
