// The commands that only read (`mailboxes`, `dead-letters list`, `explain`) run without the file's `{ "env" }`
// secrets: a warning naming the field and the variable, never an error; `explain` says which signature it could
// not check. Commands that need them (`serve`) still refuse (exit 2). Through the `cellgate` process.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Path from "node:path"
import { ensureBuilt, runCli, tempDir, writeJson } from "../support/Http.js"

const UNSET = "CELLGATE_O1_UNSET_GITHUB_SECRET"
const UNSET_JIRA = "CELLGATE_O1_UNSET_JIRA_SECRET"
let tmp: ReturnType<typeof tempDir>
let file: string

beforeAll(() => {
  ensureBuilt()
  tmp = tempDir()
  file = writeJson(tmp.dir, "read-only.json", {
    store: { kind: "sqlite", path: Path.join(tmp.dir, "read-only.db") },
    providers: { github: { webhookSecret: { env: UNSET } } },
    directory: {
      regions: [{ name: "us", url: "http://127.0.0.1:9" }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [
        { id: 7, provider: "github", externalId: "4242" },
        { id: 8, provider: "jira_server", externalId: "j-1", metadata: { webhookSecret: { env: UNSET_JIRA } } }
      ],
      organizationIntegrations: [{ organizationId: 1, integrationId: 7 }, { organizationId: 1, integrationId: 8 }]
    }
  })
})

afterAll(() => tmp?.cleanup())

const warnings = (stderr: string) =>
  stderr.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.message === "secret not set: left out (this command only reads)")

describe("read-only commands without the secrets", () => {
  it("mailboxes: a warning per unset secret naming the field and the variable, exit 0", async () => {
    const run = await runCli(["mailboxes", "--config", file, "--json"])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual([])
    expect(warnings(run.stderr).map((w) => [w.key, w.variable])).toEqual([
      ["providers.github.webhookSecret", UNSET],
      ["directory.integrations.1.metadata.webhookSecret", UNSET_JIRA]
    ])
  })

  it("dead-letters list: the same", async () => {
    const run = await runCli(["dead-letters", "list", "--config", file])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("ID")
    expect(warnings(run.stderr)).toHaveLength(2)
  })

  it("explain: routes, and says the signature check was skipped and why", async () => {
    const run = await runCli([
      "explain",
      "--config",
      file,
      "--method",
      "POST",
      "--path",
      "/extensions/github/webhook/",
      "--header",
      "X-GitHub-Event: push",
      "--header",
      "X-Hub-Signature-256: sha256=00",
      "--body-file",
      writeJson(tmp.dir, "push.json", { installation: { id: 4242 }, repository: { id: 1 } })
    ])
    expect(run.code).toBe(0)
    const out = JSON.parse(run.stdout)
    expect(out.decision._tag).toBe("Enqueue")
    expect(out.verified).toBe("skipped (providers.github.webhookSecret unset)")
  })

  it("explain with every secret set says nothing about verification", async () => {
    const run = await runCli([
      "explain",
      "--config",
      file,
      "--method",
      "GET",
      "--path",
      "/"
    ], { env: { [UNSET]: "s", [UNSET_JIRA]: "j" } })
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout).verified).toBeUndefined()
    expect(warnings(run.stderr)).toEqual([])
  })

  it("serve still needs them: exit 2 naming the field and the variable", async () => {
    const run = await runCli(["serve", "--config", file, "--port", "0"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(`providers.github.webhookSecret: environment variable ${UNSET} is not set`)
    expect(run.stdout).not.toContain("listening")
  })

  it("a secret the command needs (the store's URL) is still an error", async () => {
    const pg = writeJson(tmp.dir, "pg-unset.json", {
      store: { kind: "postgres", url: { env: "CELLGATE_O1_UNSET_URL" } }
    })
    const run = await runCli(["mailboxes", "--config", pg])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("store.url: environment variable CELLGATE_O1_UNSET_URL is not set")
  })
})
