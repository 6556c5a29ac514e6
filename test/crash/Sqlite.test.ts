// Crash safety on SQLite, as real processes: `cellgate serve` (worker on) takes a stream of sequenced Jira Server
// webhooks for six integrations in two regions (twelve mailboxes); the region answers 200, then 503 for a while (a
// backlog builds up), and the gateway is killed with SIGKILL mid-stream while that backlog waits; a new `serve` on the
// same file takes the rest of the stream and drains everything. Every webhook answered 202 must have reached each of
// its two mailboxes at least once, and per mailbox the first deliveries must come in the order of the 202s.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Path from "node:path"
import type { Served } from "../support/Http.js"
import { ensureBuilt, tempDir, writeJson } from "../support/Http.js"
import type { Region, Sent } from "./support.js"
import {
  checkDeliveries,
  deadLetters,
  directory,
  integrations,
  kill9,
  killAll,
  mailboxes,
  serve,
  sleep,
  startRegion,
  stream,
  waitEmpty
} from "./support.js"

const INTEGRATIONS = 6
const PER_INTEGRATION = 50
const TOTAL = INTEGRATIONS * PER_INTEGRATION

let tmp: ReturnType<typeof tempDir>
let region: Region

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  region = await startRegion({ delayMs: 2 })
})

afterAll(async () => {
  await killAll()
  await region?.close()
  tmp?.cleanup()
})

describe("crash safety: SQLite", () => {
  it("kill -9 mid-stream with a backlog: every 202 is delivered, in 202 order per mailbox", async () => {
    const ints = await integrations(INTEGRATIONS)
    const file = writeJson(tmp.dir, "cellgate.json", {
      server: { host: "127.0.0.1" },
      store: { kind: "sqlite", path: Path.join(tmp.dir, "data", "cellgate.db") },
      delivery: {
        pollIntervalMs: 100,
        requestTimeoutMs: 3000,
        backoffBaseMs: 100,
        backoffRate: 1.5,
        backoffMaxMs: 400,
        jitter: 0.1,
        maxAttempts: 10_000
      },
      directory: directory(region.url, ints)
    })
    const args = ["--config", file, "--port", "0"]

    let gateway: Served = await serve(args)
    let restarted: Promise<void> | null = null
    const sent: Array<Sent> = []
    // set when the stream ends (also on failure), so that the script below never waits forever
    let over = false
    const acked = () => sent.filter((s) => s.status === 202).length
    let backlogAtKill = -1
    let killedAt = -1

    const restart = async () => {
      await kill9(gateway.child)
      killedAt = sent.length
      // the file as the crash left it: what is waiting there must all come out after the restart
      backlogAtKill = (await mailboxes(file)).reduce((n, m) => n + m.depth, 0)
      gateway = await serve(args)
    }

    // the script: 200s, then 503s from 25% of the 202s, SIGKILL at 55%, 200s again from 70%
    const script = (async () => {
      while (!over && acked() < TOTAL * 0.25) await sleep(5)
      region.failing = true
      while (!over && acked() < TOTAL * 0.55) await sleep(5)
      restarted = restart()
      await restarted
      while (!over && acked() < TOTAL * 0.7 && sent.length < TOTAL) await sleep(5)
      region.failing = false
    })()

    await stream({
      ints,
      perIntegration: PER_INTEGRATION,
      target: () => gateway.url,
      pauseMs: 3,
      onError: async () => {
        // connection refused or reset: the gateway was killed; wait for the new one
        while (restarted === null) await sleep(5)
        await restarted
      },
      sent
    }).finally(() => {
      over = true
    })
    await script
    await waitEmpty(file, {}, 40_000)

    const result = checkDeliveries(sent, region.delivered)
    expect(killedAt).toBeGreaterThan(0)
    expect(backlogAtKill).toBeGreaterThan(0)
    expect(region.failed.length).toBeGreaterThan(0)
    expect(sent.filter((s) => s.status !== 202 && s.status !== null)).toEqual([])
    expect(result.acked).toBeGreaterThan(TOTAL * 0.9)
    expect(result.mailboxes).toBe(INTEGRATIONS * 2)
    expect(result.missing).toEqual([])
    expect(result.disorder).toEqual([])
    expect(region.overlaps).toEqual([])
    expect(await deadLetters(file)).toEqual([])
    console.log(
      `sqlite crash: ${sent.length} sent, ${result.acked} acked, ${sent.length - result.acked} unanswered at the ` +
        `kill, backlog at the kill ${backlogAtKill}, ${region.delivered.length} deliveries ` +
        `(${result.duplicates} duplicates), ${region.failed.length} answered 503`
    )
    await gateway.stop()
  }, 60_000)
})
