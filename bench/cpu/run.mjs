// CPU time per request of the gateway process: a steadier measure than req/s on a shared machine. Starts
// `cellgate serve --no-worker` (SQLite, the Jira Server flow of bench/run.mjs), warms it up, then sends a fixed
// number of requests (autocannon, 32 connections) and reads the process's user + system time from /proc before and
// after. Several trees can be compared in one run (`--tree DIR`, repeated): rounds alternate between them.
//
//   npx tsc -b && node bench/cpu/run.mjs [--scenario valid|invalid] [--requests 20000] [--rounds 3]
//                                        [--tree /path/to/other/checkout] [--synchronous NORMAL] [--prof DIR]
//                                        [--postgres URL] [--tree peer]
//
// `--postgres URL`: the store is that PostgreSQL database (not emptied between rounds). `--tree peer`: the
// hand-built peer of bench/run.mjs (installed in .bench/peer by `npm run bench`), SQLite only.
// `--prof DIR` runs the gateway under `node --cpu-prof --cpu-prof-dir DIR` (one profile per round).
import autocannon from "autocannon"
import { spawn } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const { values: args } = parseArgs({
  options: {
    scenario: { type: "string", default: "valid" },
    requests: { type: "string", default: "20000" },
    rounds: { type: "string", default: "3" },
    tree: { type: "string", multiple: true },
    synchronous: { type: "string", default: "NORMAL" },
    prof: { type: "string" },
    connections: { type: "string", default: "32" },
    postgres: { type: "string" }
  }
})
const trees = args.tree?.length ? args.tree.map((t) => (t === "peer" ? "peer" : resolve(t))) : [root]
const REQUESTS = Number(args.requests)
const CONNECTIONS = Number(args.connections)
const work = join(root, ".bench")
mkdirSync(work, { recursive: true })

const { jiraServerToken } = await import(join(root, "packages/core/dist/index.js"))
const SECRET = "a long secret value"
const EXTERNAL = "jira.example.org:bench"
const directory = {
  regions: [{ name: "eu", url: "http://127.0.0.1:9" }, { name: "us", url: "http://127.0.0.1:9" }],
  organizations: [{ id: 1, slug: "acme-us", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
  integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 10 }]
}
const token = await jiraServerToken(EXTERNAL, args.scenario === "invalid" ? "not the secret" : SECRET)
const body = readFileSync(join(root, "test/fixtures/jira-server/sentry_issue_updated_status_minimal.json"))
const path = `/extensions/jira-server/issue-updated/${token}/`
const CLK_TCK = 100

const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14 and 15)
}

/**
 * Starts a server process and resolves with its URL, read from its `listening on …` line; `stop` kills it with
 * `signal`, then removes `files`.
 */
const startServer = (name, command, argv, { cwd, files, signal }) =>
  new Promise((done, fail) => {
    const child = spawn(command, argv, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    child.stdout.on("data", (d) => {
      out += d
      const m = /listening on (http:\/\/[^\s]+)/.exec(out)
      if (m) {
        child.stdout.removeAllListeners("data")
        child.stdout.resume()
        done({
          url: m[1],
          child,
          stop: () =>
            new Promise((ok) => {
              child.once("exit", () => {
                for (const f of files) rmSync(f, { force: true })
                ok()
              })
              child.kill(signal)
            })
        })
      }
    })
    child.stderr.on("data", (d) => (out += d))
    child.on("exit", (code) => fail(new Error(`${name} exited (${code}): ${out}`)))
  })

const sqliteFiles = (db) => ["", "-wal", "-shm"].map((s) => db + s)

// `--tree peer` measures the hand-built peer of bench/run.mjs instead (installed in .bench/peer by `npm run bench`)
const startPeer = () => {
  const peerDir = join(work, "peer")
  writeFileSync(join(work, "cpu-directory.json"), JSON.stringify(directory))
  const db = join(work, `cpu-peer-${Math.random().toString(36).slice(2)}.db`)
  return startServer("peer", process.execPath, [
    join(peerDir, "server.mjs"),
    "--directory",
    join(work, "cpu-directory.json"),
    "--db",
    db,
    "--port",
    String(19000 + Math.floor(Math.random() * 1000)),
    "--synchronous",
    args.synchronous.toUpperCase()
  ], { cwd: peerDir, files: sqliteFiles(db), signal: "SIGKILL" })
}

const startGateway = (tree) => (tree === "peer" ? startPeer() : startCellgate(tree))

const startCellgate = (tree) => {
  const db = join(work, `cpu-${Math.random().toString(36).slice(2)}.db`)
  const file = db.replace(/\.db$/, ".json")
  writeFileSync(
    file,
    JSON.stringify({
      server: { host: "127.0.0.1", port: 0 },
      store: args.postgres
        ? { kind: "postgres", url: args.postgres }
        : { kind: "sqlite", path: db, synchronous: args.synchronous.toLowerCase() },
      directory
    })
  )
  const nodeArgs = args.prof ? ["--cpu-prof", "--cpu-prof-dir", resolve(args.prof)] : []
  return startServer("cellgate", process.execPath, [
    ...nodeArgs,
    join(tree, "packages/http/bin/cellgate.js"),
    "serve",
    "--config",
    file,
    "--no-worker",
    "--port",
    "0"
  ], { cwd: undefined, files: [...sqliteFiles(db), file], signal: "SIGINT" })
}

const fire = (url, amount) =>
  new Promise((done, fail) =>
    autocannon({
      url: url + path,
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      connections: CONNECTIONS,
      amount
    }, (err, r) => (err ? fail(err) : done(r)))
  )

const results = trees.map(() => [])
for (let round = 0; round < Number(args.rounds); round++) {
  for (let t = 0; t < trees.length; t++) {
    const g = await startGateway(trees[t])
    await fire(g.url, Math.min(5000, REQUESTS))
    const before = cpuTicks(g.child.pid)
    const started = Date.now()
    const r = await fire(g.url, REQUESTS)
    const wall = (Date.now() - started) / 1000
    const ticks = cpuTicks(g.child.pid) - before
    const usPerRequest = (ticks / CLK_TCK) * 1e6 / REQUESTS
    results[t].push({ usPerRequest, rps: REQUESTS / wall, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors })
    console.error(
      `round ${round + 1} ${trees[t]}: ${usPerRequest.toFixed(1)} µs CPU/request, ${
        Math.round(REQUESTS / wall)
      } req/s, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}`
    )
    await g.stop()
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
console.log(`\n${args.scenario} token, SQLite ${args.synchronous}, ${REQUESTS} requests × ${args.rounds} rounds`)
console.log("| tree | µs CPU / request (median) | req/s (median) | p99 ms |")
console.log("|---|---|---|---|")
trees.forEach((t, i) => {
  const r = results[i]
  console.log(
    `| ${t} | ${median(r.map((x) => x.usPerRequest)).toFixed(1)} | ${Math.round(median(r.map((x) => x.rps)))} | ${
      median(r.map((x) => x.p99))
    } |`
  )
})
process.exit(0)
