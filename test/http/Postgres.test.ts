// `serve --no-worker` and `cellgate worker` as separate processes sharing one PostgreSQL database (a fresh database
// per run, dropped afterwards). Needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import type { Stub } from "../support/Http.js"
import {
  call,
  ensureBuilt,
  fixture,
  readFixture,
  runCli,
  serveCli,
  startStub,
  tempDir,
  writeJson
} from "../support/Http.js"
import { bin, root } from "../support/Http.js"
import { createDatabase, dbUrl, dropDatabase, jiraServerDirectory } from "../support/Processes.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const body = Fs.readFileSync(fixture("jira-server", "sentry_issue_updated_status_minimal.json"))

let tmp: ReturnType<typeof tempDir>
let region: Stub
let file: string
let dbName: string

beforeAll(async () => {
  ensureBuilt()
  dbName = createDatabase("cellgate_http")
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
  file = writeJson(tmp.dir, "pg.json", {
    store: { kind: "postgres", url: { env: "TEST_PG_URL" } },
    delivery: { pollIntervalMs: 100 },
    directory: jiraServerDirectory(region.url)
  })
})

afterAll(async () => {
  await region?.close()
  tmp?.cleanup()
  if (dbName !== undefined) dropDatabase(dbName)
})

describe("PostgreSQL: gateway and worker processes", () => {
  it("serve --no-worker stores; cellgate worker delivers; both stop on SIGTERM", async () => {
    const env = { TEST_PG_URL: dbUrl(dbName) }
    const served = await serveCli(["--config", file, "--port", "0", "--no-worker"], { env })
    try {
      expect((await call(served.url, "/readyz")).status).toBe(200)
      const reply = await call(served.url, `/extensions/jira-server/issue-updated/${vector.valid_token}/`, { body })
      expect(reply.status).toBe(202)
      await new Promise((r) => setTimeout(r, 300))
      expect(region.received).toHaveLength(0)
      const boxes = await runCli(["mailboxes", "--config", file, "--json"], { env })
      expect(JSON.parse(boxes.stdout)).toMatchObject([{ mailbox: "jira_server:us:10", depth: 1 }])

      const worker = spawn(process.execPath, [bin, "worker", "--config", file], {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      worker.stdout.on("data", (c: Buffer) => (out += c.toString()))
      const exited = new Promise<number | null>((r) => worker.on("exit", (code) => r(code)))
      try {
        const [got] = await region.waitFor(1, 15_000)
        expect(Buffer.compare(got!.body, body)).toBe(0)
        expect(got!.headers["x-cellgate-mailbox"]).toBe("jira_server:us:10")
      } finally {
        worker.kill("SIGTERM")
      }
      expect(await exited).toBe(0)
      expect(out).toContain("delivery worker started")
      expect(out).not.toContain(vector.webhook_secret)
    } finally {
      expect((await served.stop()).code).toBe(0)
    }
  })
})
