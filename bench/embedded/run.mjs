// The embedded path: `Gateway.handle` in-process, no HTTP — the Jira Server flow of bench/run.mjs (valid token, two
// regions, SQLite) with 32 webhooks in flight, reported in µs per webhook (wall and CPU of this process). Log lines
// are built (the JSON logger) and dropped. Several trees can be compared in one run (`--tree DIR`, repeated):
// rounds alternate between them.
//
//   npx tsc -b && node bench/embedded/run.mjs [--webhooks 20000] [--rounds 3] [--synchronous normal|full]
//                                             [--scenario valid|invalid] [--tree DIR]…
import { rmSync } from "node:fs"
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const { values: args } = parseArgs({
  options: {
    webhooks: { type: "string", default: "20000" },
    rounds: { type: "string", default: "3" },
    synchronous: { type: "string", default: "normal" },
    scenario: { type: "string", default: "valid" },
    tree: { type: "string", multiple: true }
  }
})
const trees = args.tree?.length ? args.tree.map((t) => resolve(t)) : [root]
const WEBHOOKS = Number(args.webhooks)
const IN_FLIGHT = 32
const body = new Uint8Array(
  readFileSync(join(root, "test/fixtures/jira-server/sentry_issue_updated_status_minimal.json"))
)
const SECRET = "a long secret value"
const EXTERNAL = "jira.example.org:bench"
const directory = {
  regions: [{ name: "eu", url: "http://127.0.0.1:9" }, { name: "us", url: "http://127.0.0.1:9" }],
  organizations: [{ id: 1, slug: "acme-us", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
  integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 10 }]
}

const open = async (tree) => {
  const { Effect, Layer, ManagedRuntime } = await import(join(tree, "node_modules/effect/dist/esm/index.js"))
  const core = await import(join(tree, "packages/core/dist/index.js"))
  const Config = await import(join(tree, "packages/http/dist/Config.js"))
  const Stores = await import(join(tree, "packages/http/dist/Stores.js"))
  const Logging = await import(join(tree, "packages/http/dist/Logging.js"))
  const db = join(root, ".bench", `embedded-${Math.random().toString(36).slice(2)}.db`)
  const config = Config.make({ store: { kind: "sqlite", path: db, synchronous: args.synchronous }, directory })
  const layer = core.Gateway.layer.pipe(
    Layer.provideMerge(Stores.gatewayLayer(config).pipe(Layer.provideMerge(Stores.storeLayer(config.store)))),
    Layer.provide(Logging.layer(Logging.makeSink(() => {})))
  )
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(
    Effect.flatMap(core.DirectoryStore.DirectoryStore, (d) => d.importDirectory(config.directory))
  )
  const gateway = await runtime.runPromise(core.Gateway.Gateway)
  const token = await core.jiraServerToken(EXTERNAL, args.scenario === "invalid" ? "not the secret" : SECRET)
  const request = () => ({
    method: "POST",
    path: `/extensions/jira-server/issue-updated/${token}/`,
    headers: { "content-type": "application/json", "content-length": String(body.length), host: "127.0.0.1" },
    body,
    receivedAt: Date.now()
  })
  const expected = args.scenario === "invalid" ? 200 : 202
  const run = (n) =>
    runtime.runPromise(
      Effect.forEach(
        Array.from({ length: n }),
        () =>
          Effect.map(gateway.handle(request()), (r) => {
            if (r.status !== expected) throw new Error(`unexpected ${r.status}`)
          }),
        { concurrency: IN_FLIGHT, discard: true }
      )
    )
  return {
    run,
    close: async () => {
      await runtime.dispose()
      for (const s of ["", "-wal", "-shm"]) rmSync(db + s, { force: true })
    }
  }
}

const results = trees.map(() => [])
for (let round = 0; round < Number(args.rounds); round++) {
  for (let t = 0; t < trees.length; t++) {
    const g = await open(trees[t])
    await g.run(Math.min(5000, WEBHOOKS))
    const cpu = process.cpuUsage()
    const start = process.hrtime.bigint()
    await g.run(WEBHOOKS)
    const wallUs = Number(process.hrtime.bigint() - start) / 1000 / WEBHOOKS
    const used = process.cpuUsage(cpu)
    const cpuUs = (used.user + used.system) / WEBHOOKS
    results[t].push({ wallUs, cpuUs })
    console.error(`round ${round + 1} ${trees[t]}: ${wallUs.toFixed(1)} µs/webhook wall, ${cpuUs.toFixed(1)} µs CPU`)
    await g.close()
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
console.log(`\nembedded Gateway.handle, ${args.scenario} token, SQLite ${args.synchronous}, ${IN_FLIGHT} in flight`)
console.log("| tree | µs / webhook wall (median) | µs CPU / webhook (median) |")
console.log("|---|---|---|")
trees.forEach((t, i) =>
  console.log(
    `| ${t} | ${median(results[i].map((r) => r.wallUs)).toFixed(1)} | ${
      median(results[i].map((r) => r.cpuUs)).toFixed(1)
    } |`
  )
)
process.exit(0)
