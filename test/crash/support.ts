// Helpers of the crash-safety tests: a recording region that detects concurrent deliveries of one mailbox, a
// directory of several Jira Server integrations in two regions, a stream of sequenced webhooks (one sender per
// integration, each waiting for its answer before the next, so the 202 order of a mailbox is well defined), the
// `cellgate worker` process, and a registry that SIGKILLs every process a test started, also when it fails.
import { jiraServerToken } from "@cellgate/core"
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Served } from "../support/Http.js"
import { bin, call, root, runCli, serveCli } from "../support/Http.js"

export const SECRET = "crash test secret"
export const REGIONS = ["eu", "us"] as const

// -- processes --------------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>()

const track = (child: ChildProcess) => {
  children.add(child)
  child.on("exit", () => children.delete(child))
  return child
}

/** SIGKILLs every process still running (afterAll / finally). */
export const killAll = async (): Promise<void> => {
  const waits = [...children].map((child) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.on("exit", () => resolve())
      child.kill("SIGKILL")
    })
  )
  await Promise.all(waits)
}

/** `kill -9` and wait for the exit. */
export const kill9 = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.on("exit", () => resolve())
    child.kill("SIGKILL")
  })

/** `cellgate serve`, tracked. */
export const serve = async (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Served> => {
  const served = await serveCli(args, { env })
  track(served.child)
  return served
}

export interface WorkerProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly stdout: () => string
}

/** `cellgate worker --config F`, tracked; resolves once it logged "delivery worker started". */
export const worker = (file: string, env: Record<string, string>): Promise<WorkerProcess> =>
  new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [bin, "worker", "--config", file], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    }))
    let out = ""
    let err = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`worker did not start: ${err}`))
    }, 20_000)
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()))
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString()
      if (out.includes("delivery worker started")) {
        clearTimeout(timer)
        resolve({ child, pid: child.pid!, stdout: () => out })
      }
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`worker exited with ${code}: ${err}`))
    })
  })

export interface MailboxRow {
  readonly mailbox: string
  readonly depth: number
  readonly leasedBy: string | null
}

/** `cellgate mailboxes --json`. */
export const mailboxes = async (file: string, env: Record<string, string> = {}): Promise<Array<MailboxRow>> => {
  const run = await runCli(["mailboxes", "--config", file, "--json"], { env })
  if (run.code !== 0) throw new Error(`mailboxes failed (${run.code}): ${run.stderr}`)
  return JSON.parse(run.stdout) as Array<MailboxRow>
}

/** `cellgate dead-letters list --json`. */
export const deadLetters = async (file: string, env: Record<string, string> = {}): Promise<Array<unknown>> => {
  const run = await runCli(["dead-letters", "list", "--config", file, "--json"], { env })
  if (run.code !== 0) throw new Error(`dead-letters failed (${run.code}): ${run.stderr}`)
  return JSON.parse(run.stdout) as Array<unknown>
}

/** Polls the outbox until it is empty. */
export const waitEmpty = async (file: string, env: Record<string, string>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  let last: Array<MailboxRow> = []
  while (Date.now() < deadline) {
    last = await mailboxes(file, env)
    if (last.length === 0) return
    await sleep(250)
  }
  throw new Error(`outbox not empty after ${timeoutMs} ms: ${JSON.stringify(last)}`)
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// -- the region ---------------------------------------------------------------------------------------------------

export interface Delivery {
  readonly mailbox: string
  readonly seq: number
  readonly attempt: number
  readonly deliveryId: string
  readonly at: number
}

export interface Region {
  readonly url: string
  /** Requests answered 2xx (the response was written), in the order they were answered. */
  readonly delivered: Array<Delivery>
  /** Requests answered 503. */
  readonly failed: Array<Delivery>
  /** A request of a mailbox arrived while another one of that mailbox was still in flight. */
  readonly overlaps: Array<{ mailbox: string; seq: number; inFlight: number }>
  /** 503 while true. */
  failing: boolean
  /** How long to wait before answering. */
  delayMs: number
  readonly inFlight: () => number
  readonly close: () => Promise<void>
}

/** The region of every mailbox: reads `x-cellgate-mailbox` and the body's `seq`, answers 200 (or 503) after `delayMs`. */
export const startRegion = async (options: { delayMs?: number; failing?: boolean } = {}): Promise<Region> => {
  const inFlight = new Map<string, number>()
  const timers = new Set<NodeJS.Timeout>()
  let total = 0
  const server = Http.createServer((req, res) => {
    const mailbox = String(req.headers["x-cellgate-mailbox"] ?? "")
    const attempt = Number(req.headers["x-cellgate-attempt"] ?? 0)
    const deliveryId = String(req.headers["x-cellgate-delivery-id"] ?? "")
    const now = inFlight.get(mailbox) ?? 0
    inFlight.set(mailbox, now + 1)
    total++
    let done = false
    const leave = () => {
      if (done) return
      done = true
      total--
      inFlight.set(mailbox, (inFlight.get(mailbox) ?? 1) - 1)
    }
    res.on("close", leave)
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      let seq = -1
      try {
        seq = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { seq: number }).seq
      } catch {
        // not ours
      }
      if (now > 0) region.overlaps.push({ mailbox, seq, inFlight: now + 1 })
      const failing = region.failing
      const t = setTimeout(() => {
        timers.delete(t)
        if (res.destroyed) return
        const d: Delivery = { mailbox, seq, attempt, deliveryId, at: Date.now() }
        res.writeHead(failing ? 503 : 200)
        res.end(() => (failing ? region.failed : region.delivered).push(d))
      }, region.delayMs)
      timers.add(t)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const region: Region = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    delivered: [],
    failed: [],
    overlaps: [],
    failing: options.failing ?? false,
    delayMs: options.delayMs ?? 0,
    inFlight: () => total,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
  return region
}

// -- configuration and traffic ---------------------------------------------------------------------------------

export interface Integration {
  readonly id: number
  readonly externalId: string
  readonly token: string
}

export const integrations = async (n: number): Promise<Array<Integration>> =>
  Promise.all(Array.from({ length: n }, async (_, i) => {
    const externalId = `jira-${i + 1}.example.org:crash`
    return { id: 100 + i, externalId, token: await jiraServerToken(externalId, SECRET) }
  }))

/** Two organizations (one per region), each linked to every integration: each webhook goes to two mailboxes. */
export const directory = (regionUrl: string, ints: ReadonlyArray<Integration>) => ({
  regions: REGIONS.map((name) => ({ name, url: regionUrl })),
  organizations: REGIONS.map((region, i) => ({ id: i + 1, slug: `org-${region}`, region })),
  integrations: ints.map((x) => ({
    id: x.id,
    provider: "jira_server",
    externalId: x.externalId,
    metadata: { webhookSecret: SECRET }
  })),
  organizationIntegrations: ints.flatMap((x) => REGIONS.map((_, i) => ({ organizationId: i + 1, integrationId: x.id })))
})

export const mailboxesOf = (integrationId: number) => REGIONS.map((r) => `jira_server:${r}:${integrationId}`)

export interface Sent {
  readonly seq: number
  readonly integration: number
  /** 202, another status, or null when the connection failed (gateway killed). */
  readonly status: number | null
}

/**
 * One sender per integration, sending `perIntegration` webhooks one after the other to `target()` (read for every
 * request, so a restarted gateway on a new port is picked up); a failed connection is recorded (status null) and
 * retried as a new webhook after `onError` resolves. `seq` is unique across the run; the issue id cycles over five
 * issues. Returns every send in the order of its answer.
 */
export const stream = async (options: {
  readonly ints: ReadonlyArray<Integration>
  readonly perIntegration: number
  readonly target: () => string
  readonly pauseMs: number
  readonly onError: () => Promise<void>
  readonly sent: Array<Sent>
}): Promise<void> => {
  let next = 0
  await Promise.all(options.ints.map(async (x) => {
    for (let i = 0; i < options.perIntegration; i++) {
      const seq = next++
      const body = JSON.stringify({
        seq,
        changelog: { id: seq, items: [{ field: "status", fromString: "Open", toString: "Done" }] },
        issue: { id: String(10_000 + (seq % 5)), key: `APP-${seq % 5}` }
      })
      let status: number | null = null
      try {
        const reply = await call(options.target(), `/extensions/jira-server/issue-updated/${x.token}/`, {
          body,
          headers: { "content-type": "application/json" }
        })
        status = reply.status
      } catch {
        status = null
      }
      options.sent.push({ seq, integration: x.id, status })
      if (status === null) await options.onError()
      else if (options.pauseMs > 0) await sleep(options.pauseMs)
    }
  }))
}

/**
 * The checks of both crash tests: every webhook answered 202 was delivered at least once to each of its two
 * mailboxes, and per mailbox the order of first deliveries (restricted to the acknowledged webhooks) is the order
 * of their 202s. Returns counts for the report.
 */
export const checkDeliveries = (sent: ReadonlyArray<Sent>, delivered: ReadonlyArray<Delivery>) => {
  const firsts = new Map<string, Array<number>>()
  const seen = new Set<string>()
  for (const d of delivered) {
    const key = `${d.mailbox}#${d.seq}`
    if (seen.has(key)) continue
    seen.add(key)
    const list = firsts.get(d.mailbox) ?? []
    list.push(d.seq)
    firsts.set(d.mailbox, list)
  }
  const acked = sent.filter((s) => s.status === 202)
  const missing: Array<string> = []
  const disorder: Array<string> = []
  const mailboxNames = new Set<string>()
  for (const s of acked) for (const m of mailboxesOf(s.integration)) mailboxNames.add(m)
  for (const m of mailboxNames) {
    const integration = Number(m.split(":")[2])
    const expected = acked.filter((s) => s.integration === integration).map((s) => s.seq)
    const ackedSet = new Set(expected)
    const got = (firsts.get(m) ?? []).filter((seq) => ackedSet.has(seq))
    const gotSet = new Set(got)
    for (const seq of expected) if (!gotSet.has(seq)) missing.push(`${m}#${seq}`)
    if (JSON.stringify(got) !== JSON.stringify(expected.filter((seq) => gotSet.has(seq)))) {
      disorder.push(`${m}: 202 order ${expected.join(",")} / first deliveries ${got.join(",")}`)
    }
  }
  const duplicates = delivered.length - seen.size
  return { acked: acked.length, missing, disorder, duplicates, mailboxes: mailboxNames.size }
}
