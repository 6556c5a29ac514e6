// The `cellgate` executable as a process: serve (listening line, JSON logs, redaction, SIGTERM with a request in
// flight), configuration errors (exit 2 naming the field), explain, token, worker, mailboxes and dead letters.
import { jiraServerToken } from "@cellgate/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Stub } from "../support/Http.js"
import {
  call,
  ensureBuilt,
  eventually,
  fixture,
  logLines,
  readFixture,
  runCli,
  serveCli,
  startStub,
  tempDir,
  writeJson
} from "../support/Http.js"

const vector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))
const SECRET: string = vector.webhook_secret
const EXTERNAL: string = vector.external_id
const VALID: string = vector.valid_token
const body = fixture("jira-server", "sentry_issue_updated_status_minimal.json")
const webhookPath = (token: string) => `/extensions/jira-server/issue-updated/${token}/`

let tmp: ReturnType<typeof tempDir>
let region: Stub
let control: Stub

const directory = (regionUrl: string) => ({
  regions: [{ name: "us", url: regionUrl }],
  organizations: [{ id: 1, slug: "acme", region: "us" }],
  integrations: [{
    id: 10,
    provider: "jira_server",
    externalId: EXTERNAL,
    metadata: { webhookSecret: { env: "TEST_JIRA_SECRET" } }
  }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
})
const env = { TEST_JIRA_SECRET: SECRET }

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
  control = await startStub(() => ({ status: 200, body: "control done", delayMs: 500 }))
})

afterAll(async () => {
  await region?.close()
  await control?.close()
  tmp?.cleanup()
})

describe("cellgate serve", () => {
  it("prints the listening line first, then JSON logs; delivers; never logs secrets; exits 0 on SIGTERM", async () => {
    const config = writeJson(tmp.dir, "serve.json", {
      store: { kind: "memory", ephemeral: true },
      control: { upstream: control.url },
      directory: directory(region.url)
    })
    const served = await serveCli(["--config", config, "--port", "0"], { env })
    try {
      const reply = await call(served.url, webhookPath(VALID), {
        body: Fs.readFileSync(body),
        headers: { authorization: "Basic c2VjcmV0LWF1dGg=", "x-hub-signature": "sha256=deadbeef" }
      })
      expect(reply.status).toBe(202)
      const [got] = await region.waitFor(1)
      expect(Buffer.compare(got!.body, Fs.readFileSync(body))).toBe(0)
      // a request in flight when SIGTERM arrives is answered
      const inflight = call(served.url, "/slow-control")
      await eventually(() => (control.received.length > 0 ? true : undefined))
      const exited = served.stop("SIGTERM")
      const answer = await inflight
      expect(answer.status).toBe(200)
      expect(answer.text).toBe("control done")
      expect((await exited).code).toBe(0)
    } finally {
      await served.stop("SIGKILL")
    }
    const out = served.stdout()
    const lines = out.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^cellgate listening on http:\/\/127\.0\.0\.1:\d+$/)
    for (const line of lines.slice(1)) expect(() => JSON.parse(line)).not.toThrow()
    const logs = logLines(out)
    expect(logs.some((l) => l.level === "warn" && String(l.message).includes("memory store"))).toBe(true)
    expect(logs.some((l) => l.message === "webhook" && l.status === 202)).toBe(true)
    expect(logs.some((l) => l.message === "shutting down")).toBe(true)
    const all = out + served.stderr()
    expect(all).not.toContain(SECRET)
    expect(all).not.toContain(VALID.split(".")[2]!)
    expect(all).not.toContain("c2VjcmV0LWF1dGg=")
    expect(all).not.toContain("deadbeef")
  })

  it("--port overrides server.port; the directory section replaces the store's (SQLite, across restarts)", async () => {
    const db = Path.join(tmp.dir, "replace.db")
    const first = writeJson(tmp.dir, "first.json", {
      store: { kind: "sqlite", path: db },
      directory: directory(region.url)
    })
    const a = await serveCli(["--config", first, "--port", "0", "--no-worker"], { env })
    try {
      expect((await call(a.url, webhookPath(VALID), { body: Fs.readFileSync(body) })).status).toBe(202)
    } finally {
      expect((await a.stop()).code).toBe(0)
    }
    // the second start imports a directory without the integration: the token no longer matches
    const second = writeJson(tmp.dir, "second.json", {
      store: { kind: "sqlite", path: db },
      directory: { ...directory(region.url), integrations: [], organizationIntegrations: [] }
    })
    const b = await serveCli(["--config", second, "--port", "0", "--no-worker"], { env })
    try {
      expect((await call(b.url, webhookPath(VALID), { body: Fs.readFileSync(body) })).status).toBe(200)
      expect((await call(b.url, "/readyz")).status).toBe(200)
    } finally {
      await b.stop()
    }
    // omitted directory: the store's is kept
    const third = writeJson(tmp.dir, "third.json", { store: { kind: "sqlite", path: db } })
    const c = await serveCli(["--config", third, "--port", "0", "--no-worker"])
    try {
      expect((await call(c.url, webhookPath(VALID), { body: Fs.readFileSync(body) })).status).toBe(200)
    } finally {
      await c.stop()
    }
  })
})

describe("configuration errors exit 2 and name the field", () => {
  const cases: Array<[string, unknown, string]> = [
    ["memory without ephemeral", { store: { kind: "memory" } }, "store.ephemeral"],
    ["a port that is not a number", { server: { port: "x" } }, "server.port"],
    ["an unknown store kind", { store: { kind: "redis" } }, "store.kind"],
    ["a bad region URL", { directory: { regions: [{ name: "us", url: "ftp://x" }] } }, "directory.regions.0.url"],
    [
      "an unset secret variable",
      { providers: { github: { webhookSecret: { env: "CELLGATE_TEST_UNSET_VARIABLE" } } } },
      "providers.github.webhookSecret"
    ],
    ["a negative body limit", { server: { maxBodyBytes: -1 } }, "server.maxBodyBytes"],
    ["a bad synchronous mode", { store: { kind: "sqlite", synchronous: "off" } }, "store.synchronous"]
  ]
  for (const [name, config, field] of cases) {
    it(name, async () => {
      const file = writeJson(tmp.dir, `bad-${field}.json`, config)
      const run = await runCli(["serve", "--config", file, "--port", "0"])
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(field)
      expect(run.stdout).not.toContain("listening")
    })
  }

  it("a file that is not JSON", async () => {
    const file = Path.join(tmp.dir, "not.json")
    Fs.writeFileSync(file, "{ nope")
    const run = await runCli(["explain", "--config", file, "--method", "GET", "--path", "/"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("not valid JSON")
  })

  it("a missing file, a missing option, an unknown command", async () => {
    expect((await runCli(["serve", "--config", Path.join(tmp.dir, "absent.json")])).code).toBe(2)
    expect((await runCli(["serve"])).code).toBe(2)
    expect((await runCli(["frobnicate"])).code).toBe(2)
  })
})

describe("runtime failures exit 1", () => {
  it("a store that cannot be opened", async () => {
    const notADir = Path.join(tmp.dir, "plain-file")
    Fs.writeFileSync(notADir, "")
    const file = writeJson(tmp.dir, "unopenable.json", { store: { kind: "sqlite", path: Path.join(notADir, "x.db") } })
    const run = await runCli(["serve", "--config", file, "--port", "0"])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("store unavailable")
    expect(run.stdout).not.toContain("listening")
  })
})

describe("cellgate explain", () => {
  let file: string
  beforeAll(() => {
    file = writeJson(tmp.dir, "explain.json", {
      store: { kind: "sqlite", path: Path.join(tmp.dir, "explain.db") },
      directory: directory("http://127.0.0.1:9")
    })
  })

  it("prints the decision (tag first), reason, provider, integration, organizations and regions", async () => {
    const run = await runCli([
      "explain",
      "--config",
      file,
      "--method",
      "POST",
      "--path",
      webhookPath(VALID),
      "--header",
      "Content-Type: application/json",
      "--body-file",
      body
    ], { env })
    expect(run.code).toBe(0)
    const out = JSON.parse(run.stdout)
    expect(Object.keys(out)).toEqual(["decision", "reason", "provider", "integration", "organizations", "regions"])
    expect(Object.keys(out.decision)[0]).toBe("_tag")
    expect(out).toEqual({
      decision: {
        _tag: "Enqueue",
        provider: "jira_server",
        integrationId: 10,
        targets: [{ region: "us", mailbox: "jira_server:us:10" }]
      },
      reason: "enqueue",
      provider: "jira_server",
      integration: { id: 10, provider: "jira_server", externalId: EXTERNAL },
      organizations: [1],
      regions: ["us"]
    })
    expect(run.stdout).not.toContain(SECRET)
  })

  it("has no side effects: nothing stored", async () => {
    const run = await runCli(["mailboxes", "--config", file, "--json"], { env })
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual([])
  })

  it("invalid token → Respond 200; unknown provider → Control", async () => {
    const bad = await runCli(["explain", "--config", file, "--method", "POST", "--path", webhookPath("x")], { env })
    expect(JSON.parse(bad.stdout)).toMatchObject({
      decision: { _tag: "Respond", status: 200 },
      reason: "Could not decode JWT token",
      integration: null
    })
    const unknown = await runCli(["explain", "--config", file, "--method", "GET", "--path", "/extensions/nope/x/"], {
      env
    })
    expect(JSON.parse(unknown.stdout)).toEqual({
      decision: { _tag: "Control" },
      reason: "unknown provider",
      provider: "nope",
      integration: null,
      organizations: [],
      regions: []
    })
  })
})

describe("cellgate token jira-server", () => {
  it("reads the secret from CELLGATE_SECRET", async () => {
    const run = await runCli(["token", "jira-server", "--external-id", EXTERNAL], { env: { CELLGATE_SECRET: SECRET } })
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toBe(VALID)
  })

  it("reads the secret from stdin", async () => {
    const run = await runCli(["token", "jira-server", "--external-id", "x"], {
      env: { CELLGATE_SECRET: "" },
      stdin: "s3cret\n"
    })
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toBe(await jiraServerToken("x", "s3cret"))
  })

  it("never takes the secret on argv", async () => {
    const run = await runCli(["token", "jira-server", "--external-id", "x", "--secret", "s3cret"])
    expect(run.code).toBe(2)
  })
})

describe("cellgate worker", () => {
  it("refuses a SQLite store with a clear message (exit 2)", async () => {
    const file = writeJson(tmp.dir, "worker.json", { store: { kind: "sqlite", path: Path.join(tmp.dir, "w.db") } })
    const run = await runCli(["worker", "--config", file])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("PostgreSQL")
    expect(run.stderr).toContain("serve")
  })
})

describe("cellgate mailboxes and dead-letters", () => {
  it("lists the backlog and the dead letters, and replays them", async () => {
    const rejecting = await startStub(() => ({ status: 400, body: "no such thing" }))
    const db = Path.join(tmp.dir, "dead.db")
    const file = writeJson(tmp.dir, "dead.json", {
      store: { kind: "sqlite", path: db },
      delivery: { pollIntervalMs: 50 },
      directory: directory(rejecting.url)
    })
    try {
      const served = await serveCli(["--config", file, "--port", "0"], { env })
      try {
        expect((await call(served.url, webhookPath(VALID), { body: Fs.readFileSync(body) })).status).toBe(202)
        await rejecting.waitFor(1)
        await new Promise((r) => setTimeout(r, 200))
      } finally {
        expect((await served.stop()).code).toBe(0)
      }
      const list = await runCli(["dead-letters", "list", "--config", file, "--json"], { env })
      expect(list.code).toBe(0)
      const dead = JSON.parse(list.stdout)
      expect(dead).toHaveLength(1)
      expect(dead[0]).toMatchObject({ mailbox: "jira_server:us:10", region: "us", lastStatus: 400 })
      expect(Object.keys(dead[0])).toEqual(["id", "mailbox", "region", "reason", "lastStatus", "deadAt"])
      const table = await runCli(["dead-letters", "list", "--config", file], { env })
      expect(table.stdout).toContain("jira_server:us:10")

      expect((await runCli(["dead-letters", "replay", "--config", file], { env })).code).toBe(2)
      const replay = await runCli(["dead-letters", "replay", "--config", file, String(dead[0].id)], { env })
      expect(replay.code).toBe(0)
      expect(replay.stdout.trim()).toBe("1")

      const boxes = await runCli(["mailboxes", "--config", file, "--json"], { env })
      const rows = JSON.parse(boxes.stdout)
      expect(rows).toHaveLength(1)
      // the tenant of a Jira Server mailbox is its integration (docs/routing.md#fair-adaptive-delivery)
      expect(rows[0]).toMatchObject({
        mailbox: "jira_server:us:10",
        region: "us",
        tenant: "i:10",
        depth: 1,
        leasedBy: null
      })
      expect(Object.keys(rows[0])).toEqual([
        "mailbox",
        "region",
        "tenant",
        "depth",
        "oldestAgeMs",
        "nextAttemptAt",
        "leasedBy"
      ])
      const text = await runCli(["mailboxes", "--config", file], { env })
      const [header, line] = text.stdout.trimEnd().split("\n")
      expect(header!.split(/\s{2,}/)).toEqual([
        "MAILBOX",
        "REGION",
        "TENANT",
        "DEPTH",
        "OLDEST AGE (s)",
        "NEXT ATTEMPT",
        "LEASED BY"
      ])
      expect(line!.split(/\s+/).slice(0, 4)).toEqual(["jira_server:us:10", "us", "i:10", "1"])
      // the columns line up: each cell of the row starts where its header does
      expect(line!.indexOf("i:10")).toBe(header!.indexOf("TENANT"))
      expect((await runCli(["dead-letters", "replay", "--config", file, "--all"], { env })).stdout.trim()).toBe("0")
    } finally {
      await rejecting.close()
    }
  })
})
