// Issue 10 item 11: `serve` binds its port first, then imports the directory, and answers nothing (not even
// `/healthz`) until the import is done. A second `serve` started by mistake on the same SQLite file and a taken
// port fails before it changes the store: the running gateway keeps answering for the organizations the second
// one's directory lacks.
import { Memory } from "@cellgate/adapters"
import { Directory, DirectoryStore, jiraServerToken } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import type { Served, Stub } from "../support/Http.js"
import {
  call,
  closedPort,
  ensureBuilt,
  eventually,
  fixture,
  runCli,
  serveCli,
  startStub,
  tempDir,
  writeJson
} from "../support/Http.js"

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const body = Fs.readFileSync(fixture("jira-server", "sentry_issue_updated_status_minimal.json"))
const webhookPath = (token: string) => `/extensions/jira-server/issue-updated/${token}/`
const A = { externalId: "startup-a", secret: "the secret of integration a" }
const B = { externalId: "startup-b", secret: "the secret of integration b" }

let tmp: ReturnType<typeof tempDir>
let region: Stub

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  region = await startStub(() => ({ status: 200 }))
})

afterAll(async () => {
  await region?.close()
  tmp?.cleanup()
})

const integration = (id: number, i: typeof A) => ({
  id,
  provider: "jira_server",
  externalId: i.externalId,
  metadata: { webhookSecret: i.secret }
})

describe("a second serve on a taken port", () => {
  it(
    "exits non-zero without importing: the first still answers for the organization it would have removed",
    async () => {
      const db = Path.join(tmp.dir, "shared.sqlite")
      const first = writeJson(tmp.dir, "first.json", {
        store: { kind: "sqlite", path: db },
        directory: {
          regions: [{ name: "us", url: region.url }],
          organizations: [{ id: 1, slug: "acme", region: "us" }, { id: 2, slug: "globex", region: "us" }],
          integrations: [integration(10, A), integration(11, B)],
          organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 11 }]
        }
      })
      // the mistake: same file, a directory without globex and its integration
      const second = (port: number) =>
        writeJson(tmp.dir, "second.json", {
          store: { kind: "sqlite", path: db },
          server: { port },
          directory: {
            regions: [{ name: "us", url: region.url }],
            organizations: [{ id: 1, slug: "acme", region: "us" }],
            integrations: [integration(10, A)],
            organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
          }
        })
      const tokenA = await jiraServerToken(A.externalId, A.secret)
      const tokenB = await jiraServerToken(B.externalId, B.secret)
      let served: Served | undefined
      try {
        served = await serveCli(["--config", first, "--port", "0"])
        const port = Number(new URL(served.url).port)
        // only integration a is asked for before: b is not in the first gateway's directory cache
        expect((await call(served.url, webhookPath(tokenA), { body })).status).toBe(202)

        const run = await runCli(["serve", "--config", second(port)])
        expect(run.code).not.toBe(0)
        expect(run.code).not.toBeNull()
        expect(run.stdout).not.toContain("listening")

        expect((await call(served.url, webhookPath(tokenB), { body })).status).toBe(202)
        expect((await call(served.url, webhookPath(tokenA), { body })).status).toBe(202)
        await region.waitFor(3)
      } finally {
        await served?.stop()
      }
    },
    30_000
  )
})

describe("nothing is answered before the import is done", () => {
  let gateway: EmbeddedServer | undefined
  afterAll(async () => {
    await gateway?.close()
  })

  it("a connection made during the import is accepted and held; /healthz answers once it is done", async () => {
    let releaseImport!: () => void
    const importGate = new Promise<void>((resolve) => (releaseImport = resolve))
    let imported = false
    const slowStore = Layer.effect(
      DirectoryStore.DirectoryStore,
      Effect.map(DirectoryStore.DirectoryStore, (store) =>
        DirectoryStore.DirectoryStore.of({
          importDirectory: (directory) =>
            Effect.promise(() => importGate).pipe(
              Effect.zipRight(store.importDirectory(directory)),
              Effect.tap(() => (imported = true))
            )
        }))
    ).pipe(Layer.provideMerge(Memory.storeLayer(new Directory({}))))
    const port = await closedPort()
    let started = false
    const starting = makeServer({
      store: { kind: "memory", ephemeral: true },
      directory: { regions: [{ name: "us", url: region.url }] }
    }, { port, worker: false, store: slowStore, log: () => {} }).then((g) => {
      started = true
      gateway = g
      return g
    })

    // the port is bound before the import: connections are accepted (no ECONNREFUSED) but get no answer
    await eventually(() => canConnect(port).then((ok) => (ok ? true : undefined)))
    let answeredAt: { imported: boolean } | undefined
    const health = call(`http://127.0.0.1:${port}`, "/healthz").then((r) => {
      answeredAt = { imported }
      return r.status
    })
    await new Promise((r) => setTimeout(r, 400))
    expect(answeredAt).toBeUndefined()
    expect(started).toBe(false)

    releaseImport()
    expect(await health).toBe(200)
    expect(answeredAt).toEqual({ imported: true })
    await starting
    expect(started).toBe(true)
  })
})
