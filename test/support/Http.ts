// Black-box helpers for the gateway tests: region / control stubs (real node:http servers), HTTP calls, and the
// built `cellgate` executable as a process. Every server and process started here must be closed by the test.
import { execFileSync, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export const root = Path.resolve(import.meta.dirname, "../..")
export const bin = Path.join(root, "packages/http/bin/cellgate.js")
const built = Path.join(root, "packages/http/dist/Cli.js")
export const fixture = (...parts: Array<string>) => Path.join(root, "test/fixtures", ...parts)
export const readFixture = (...parts: Array<string>) => Fs.readFileSync(fixture(...parts))

export interface Received {
  readonly method: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

export interface Answer {
  readonly status?: number
  readonly headers?: Record<string, string>
  readonly body?: string | Buffer
  /** Wait this long before answering. */
  readonly delayMs?: number
}

export interface Stub {
  readonly url: string
  readonly port: number
  readonly received: Array<Received>
  answer: (req: Received) => Answer
  /** Resolves once `n` requests have arrived (or rejects after `timeoutMs`). */
  readonly waitFor: (n: number, timeoutMs?: number) => Promise<ReadonlyArray<Received>>
  readonly close: () => Promise<void>
}

/** A stub HTTP server (a region, or the control upstream) that records every request. */
export const startStub = async (answer: (req: Received) => Answer = () => ({ status: 200 })): Promise<Stub> => {
  const received: Array<Received> = []
  const waiters: Array<() => void> = []
  const timers = new Set<NodeJS.Timeout>()
  const server = Http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const r: Received = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks)
      }
      received.push(r)
      for (const w of waiters.splice(0)) w()
      const a = stub.answer(r)
      const reply = () => {
        if (res.destroyed) return
        res.writeHead(a.status ?? 200, a.headers ?? {})
        res.end(a.body ?? "")
      }
      if (a.delayMs !== undefined) {
        const t = setTimeout(() => {
          timers.delete(t)
          reply()
        }, a.delayMs)
        timers.add(t)
      } else reply()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  const stub: Stub = {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    answer,
    waitFor: (n, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`stub got ${received.length} of ${n} requests`)), timeoutMs)
        const check = () => {
          if (received.length >= n) {
            clearTimeout(deadline)
            resolve(received.slice())
          } else waiters.push(check)
        }
        check()
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
  return stub
}

/** A port with nothing listening on it (connection refused). */
export const closedPort = async (): Promise<number> => {
  const server = Http.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
}

/** One HTTP request with node:http (exact bytes, any method, no redirects, no connection reuse). */
export const call = (
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const body = options.body === undefined ? undefined : Buffer.from(options.body)
    const req = Http.request({
      host: url.hostname,
      port: url.port,
      method: options.method ?? (body === undefined ? "GET" : "POST"),
      path,
      agent: false,
      headers: { ...(body !== undefined ? { "content-length": String(body.length) } : {}), ...options.headers }
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        const b = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, text: b.toString("utf8") })
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end(body)
  })

/** A temporary directory removed by `cleanup`. */
export const tempDir = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "cellgate-test-"))
  return { dir, cleanup: () => Fs.rmSync(dir, { recursive: true, force: true }) }
}

export const writeJson = (dir: string, name: string, value: unknown): string => {
  const file = Path.join(dir, name)
  Fs.writeFileSync(file, JSON.stringify(value, null, 2))
  return file
}

const newest = (dir: string): number => {
  let t = 0
  for (const entry of Fs.readdirSync(dir, { withFileTypes: true })) {
    const p = Path.join(dir, entry.name)
    t = Math.max(t, entry.isDirectory() ? newest(p) : Fs.statSync(p).mtimeMs)
  }
  return t
}

/** Builds the packages (`tsc -b`) when a source file is newer than the built executable. */
export const ensureBuilt = () => {
  const builtAt = Fs.existsSync(built) ? Fs.statSync(built).mtimeMs : 0
  const sources = Math.max(...["core", "adapters", "http"].map((p) => newest(Path.join(root, "packages", p, "src"))))
  if (sources > builtAt) {
    try {
      execFileSync(process.execPath, [Path.join(root, "node_modules/typescript/bin/tsc"), "-b"], {
        cwd: root,
        stdio: "pipe"
      })
    } catch {
      // tsc -b still emits what compiles; the tests fail loudly if the executable is unusable
    }
  }
}

export interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `cellgate …` to completion. */
export const runCli = (
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string>; stdin?: string; cwd?: string; timeoutMs?: number } = {}
): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? root,
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.end(options.stdin ?? "")
  })

export interface Served {
  readonly url: string
  readonly child: ChildProcess
  /** Everything printed so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  /** SIGTERM, then the exit. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts `cellgate serve …` and resolves on its first stdout line (the listening line). */
export const serveCli = (
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string>; cwd?: string } = {}
): Promise<Served> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "serve", ...args], {
      cwd: options.cwd ?? root,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let started = false
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.on("exit", (code, signal) => r({ code, signal }))
    )
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`serve did not start: ${stderr}`))
    }, 20_000)
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      const nl = stdout.indexOf("\n")
      if (!started && nl !== -1) {
        started = true
        clearTimeout(timer)
        const m = /^cellgate listening on (http:\/\/\S+)$/.exec(stdout.slice(0, nl))
        if (m === null) {
          child.kill("SIGKILL")
          return reject(new Error(`unexpected first line: ${stdout.slice(0, nl)}`))
        }
        resolve({
          url: m[1]!,
          child,
          stdout: () => stdout,
          stderr: () => stderr,
          stop: (signal = "SIGTERM") => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal)
            return exited
          }
        })
      }
    })
    child.on("exit", (code) => {
      if (!started) {
        clearTimeout(timer)
        reject(new Error(`serve exited with ${code}: ${stderr}`))
      }
    })
  })

/** Parses the JSON log lines of a process's stdout (skipping the listening line and non-JSON lines). */
export const logLines = (stdout: string): Array<Record<string, unknown>> =>
  stdout.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      return [JSON.parse(line) as Record<string, unknown>]
    } catch {
      return []
    }
  })

/** Polls `f` until it returns a value other than undefined. */
export const eventually = async <A>(f: () => A | undefined | Promise<A | undefined>, timeoutMs = 5_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((r) => setTimeout(r, 25))
  }
}
