// Support for the operations tests: a local OTLP/HTTP receiver (node:http on 127.0.0.1:0 collecting the JSON POSTs
// to /v1/traces), `cellgate worker` as a process, and a throw-away PostgreSQL database driven with psql.
import { execFileSync, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { bin, root } from "../support/Http.js"

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

export interface WorkerProcess {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** The first line when it is `cellgate worker metrics on …` (else undefined). */
  readonly metricsUrl: string | undefined
  readonly stop: () => Promise<number | null>
}

/** Starts `cellgate worker …` and resolves on its first stdout line. */
export const startWorker = (
  args: ReadonlyArray<string>,
  env: Record<string, string>
): Promise<WorkerProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "worker", ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let started = false
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`worker did not start: ${stderr}`))
    }, 20_000)
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      const nl = stdout.indexOf("\n")
      if (started || nl === -1) return
      started = true
      clearTimeout(timer)
      const m = /^cellgate worker metrics on (http:\/\/\S+)$/.exec(stdout.slice(0, nl))
      resolve({
        child,
        stdout: () => stdout,
        stderr: () => stderr,
        metricsUrl: m?.[1],
        stop: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
          return exited
        }
      })
    })
    child.on("exit", (code) => {
      if (!started) {
        clearTimeout(timer)
        reject(new Error(`worker exited with ${code}: ${stderr}`))
      }
    })
  })

const base = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test")

export const dbUrl = (name: string): string => {
  const u = new URL(base)
  u.pathname = `/${name}`
  return u.toString()
}

export const psql = (sql: string): void => {
  execFileSync("psql", [dbUrl("postgres"), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], { stdio: "pipe" })
}

/** Creates a throw-away database (a loud failure when PostgreSQL is not running) and returns its name. */
export const createDatabase = (prefix: string): string => {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`
  try {
    psql(`CREATE DATABASE ${name}`)
  } catch (error) {
    throw new Error(
      `PostgreSQL is needed at ${base.host} (DATABASE_URL): start it with ` +
        `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start — ${String(error)}`
    )
  }
  return name
}

export const dropDatabase = (name: string): void => {
  try {
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  } catch {
    // already gone
  }
}
