// Shedding black-box (docs/routing.md#shedding): the built `cellgate` as processes — `serve` on a SQLite store, and
// `shed add|list|remove` changing what the running gateway answers within 5 s; `explain`; the errors (exit 2).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Path from "node:path"
import { call, ensureBuilt, eventually, runCli, serveCli, tempDir, writeJson } from "../support/Http.js"

let tmp: ReturnType<typeof tempDir>

beforeAll(() => {
  ensureBuilt()
  tmp = tempDir()
})
afterAll(() => tmp?.cleanup())

const directory = {
  regions: [{ name: "us", url: "http://127.0.0.1:9" }],
  organizations: [{ id: 1, slug: "acme", region: "us" }],
  integrations: [
    { id: 100, provider: "github", externalId: "1000" },
    { id: 101, provider: "github", externalId: "1001" }
  ],
  organizationIntegrations: [{ organizationId: 1, integrationId: 100 }, { organizationId: 1, integrationId: 101 }]
}

const push = (url: string, installation = 1000) =>
  call(url, "/extensions/github/webhook/", {
    body: JSON.stringify({ installation: { id: installation }, repository: { id: 1267 } }),
    headers: { "content-type": "application/json", "x-github-event": "push" }
  })

const shedCount = async (url: string): Promise<number> => {
  const metrics = (await call(url, "/metrics")).text
  const m = /^cellgate_shed_total\{provider="github"\} (\d+)$/m.exec(metrics)
  return m === null ? 0 : Number(m[1])
}

describe("cellgate shed against a running gateway", () => {
  it(
    "shed add → 429 within 5 s, nothing stored, counted; shed list marks the source; shed remove → 202 again",
    async () => {
      const config = writeJson(tmp.dir, "shed.json", {
        store: { kind: "sqlite", path: Path.join(tmp.dir, "shed.db") },
        shed: [{ provider: "gitlab" }],
        directory
      })
      const served = await serveCli(["--config", config, "--port", "0", "--no-worker"])
      try {
        expect((await push(served.url)).status).toBe(202)

        const added = await runCli(["shed", "add", "--config", config, "--provider", "github", "--integration", "100"])
        expect(added.code, added.stderr).toBe(0)
        expect(added.stdout).toContain("shedding github integration 100")
        const addedAt = Date.now()
        let acceptedMeanwhile = 0 // before the gateway read the new rule (at most a second)
        const shed = await eventually(async () => {
          const r = await push(served.url)
          if (r.status === 202) acceptedMeanwhile++
          return r.status === 429 ? r : undefined
        }, 5_000)
        expect(Date.now() - addedAt).toBeLessThan(5_000)
        expect(shed.headers["retry-after"]).toBe("60")
        expect(JSON.parse(shed.text)).toMatchObject({ error: "shed" })
        // another integration of github is not shed
        expect((await push(served.url, 1001)).status).toBe(202)
        expect(await shedCount(served.url)).toBeGreaterThanOrEqual(1)

        const listed = await runCli(["shed", "list", "--config", config, "--json"])
        expect(listed.code, listed.stderr).toBe(0)
        expect(JSON.parse(listed.stdout)).toEqual([
          { provider: "gitlab", integrationId: null, source: "config" },
          { provider: "github", integrationId: 100, source: "store" }
        ])
        const table = await runCli(["shed", "list", "--config", config])
        expect(table.stdout).toMatch(/^PROVIDER\s+INTEGRATION\s+SOURCE\ngitlab\s+\*\s+config\ngithub\s+100\s+store\n$/)

        // nothing of the shed webhooks was stored: those of integration 100 accepted before the rule, one of 101
        const boxes = await runCli(["mailboxes", "--config", config, "--json"])
        expect(boxes.code, boxes.stderr).toBe(0)
        const depths = Object.fromEntries(
          (JSON.parse(boxes.stdout) as Array<{ mailbox: string; depth: number }>).map((m) => [m.mailbox, m.depth])
        )
        expect(depths).toEqual({ "github:us:100:67:push": 1 + acceptedMeanwhile, "github:us:101:67:push": 1 })

        // a config rule is not the CLI's to remove (exit 2); a rule nobody has is exit 1
        const configRule = await runCli(["shed", "remove", "--config", config, "--provider", "gitlab"])
        expect(configRule.code).toBe(2)
        expect(configRule.stderr).toContain("shed section")
        const absent = await runCli([
          "shed",
          "remove",
          "--config",
          config,
          "--provider",
          "github",
          "--integration",
          "7"
        ])
        expect(absent.code).toBe(1)

        const removed = await runCli([
          "shed",
          "remove",
          "--config",
          config,
          "--provider",
          "github",
          "--integration",
          "100"
        ])
        expect(removed.code, removed.stderr).toBe(0)
        await eventually(async () => ((await push(served.url)).status === 202 ? true : undefined), 5_000)
      } finally {
        await served.stop()
      }
    },
    60_000
  )
})

describe("shed rules: explain, and errors", () => {
  it("explain shows a shed webhook as Respond 429 with reason shed", async () => {
    const config = writeJson(tmp.dir, "explain.json", {
      store: { kind: "memory", ephemeral: true },
      shed: [{ provider: "github", integrationId: 100 }],
      directory
    })
    const body = writeJson(tmp.dir, "body.json", { installation: { id: 1000 }, repository: { id: 1 } })
    const run = await runCli([
      "explain",
      "--config",
      config,
      "--method",
      "POST",
      "--path",
      "/extensions/github/webhook/",
      "--header",
      "x-github-event:push",
      "--body-file",
      body
    ])
    expect(run.code, run.stderr).toBe(0)
    const out = JSON.parse(run.stdout)
    expect(out.reason).toBe("shed")
    expect(out.decision).toMatchObject({ _tag: "Respond", status: 429, reason: "shed" })
  })

  const bad: Array<[string, unknown, string]> = [
    ["no provider", [{ integrationId: 3 }], "shed.0.provider"],
    ["an unknown provider", [{ provider: "githib" }], "shed.0.provider"],
    ["an unknown key", [{ provider: "github", integration: 3 }], "shed.0.integration"],
    ["a bad integration id", [{ provider: "github", integrationId: -1 }], "shed.0.integrationId"],
    ["not a list", { provider: "github" }, "shed"]
  ]
  for (const [name, shed, path] of bad) {
    it(`a config rule with ${name} → exit 2 naming ${path}`, async () => {
      const config = writeJson(tmp.dir, "bad-shed.json", { store: { kind: "memory", ephemeral: true }, shed })
      const run = await runCli(["shed", "list", "--config", config])
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(`${path}:`)
    })
  }

  it("shed add with an unknown provider, a bad integration, or on a memory store → exit 2", async () => {
    const sqlite = writeJson(tmp.dir, "add.json", { store: { kind: "sqlite", path: Path.join(tmp.dir, "add.db") } })
    const unknown = await runCli(["shed", "add", "--config", sqlite, "--provider", "nope"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown provider")
    const zero = await runCli(["shed", "add", "--config", sqlite, "--provider", "github", "--integration", "0"])
    expect(zero.code).toBe(2)
    const noProvider = await runCli(["shed", "add", "--config", sqlite])
    expect(noProvider.code).toBe(2)
    const memory = writeJson(tmp.dir, "memory.json", { store: { kind: "memory", ephemeral: true } })
    const onMemory = await runCli(["shed", "add", "--config", memory, "--provider", "github"])
    expect(onMemory.code).toBe(2)
    expect(onMemory.stderr).toContain("memory store")
  })
})
