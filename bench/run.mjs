// One-command benchmarks: cellgate against the physical limit (bare node:http) and a hand-built peer
// (Fastify + jose + better-sqlite3), measured in the same run, alternating rounds, reported as ratios.
//
//   npm run bench             full run (several minutes)
//   npm run bench -- --quick  under two minutes
//
// Needs a build (`npm run build`, done by `npm install`). The peer comes from ../shared/bench-peers (copied to
// .bench/peer and installed there once); when ../shared is absent the peer column is reported as missing.
import autocannon from "autocannon"
import { execFileSync, spawn } from "node:child_process"
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    memory: { type: "boolean", default: false },
    out: { type: "string" }
  }
})
const QUICK = args.quick
const ROUNDS = QUICK ? 2 : 4
const DURATION = QUICK ? 4 : 10
const WARMUP = QUICK ? 1 : 3
const CONNECTIONS = 32
const work = join(root, ".bench")
mkdirSync(work, { recursive: true })

const { jiraServerToken } = await import(join(root, "packages/core/dist/index.js"))

// ---- the workload: the Jira Server issue-updated flow, two regions ----
const SECRET = "a long secret value"
const EXTERNAL = "jira.example.org:bench"
const directory = {
  regions: [{ name: "eu", url: "http://127.0.0.1:9" }, { name: "us", url: "http://127.0.0.1:9" }],
  organizations: [{ id: 1, slug: "acme-us", region: "us" }, { id: 2, slug: "acme-eu", region: "eu" }],
  integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }, { organizationId: 2, integrationId: 10 }]
}
const token = await jiraServerToken(EXTERNAL, SECRET)
const badToken = await jiraServerToken(EXTERNAL, "not the secret")
const body = readFileSync(join(root, "test/fixtures/jira-server/sentry_issue_updated_status_minimal.json"))
const jiraPath = (t) => `/extensions/jira-server/issue-updated/${t}/`
writeFileSync(join(work, "directory.json"), JSON.stringify(directory))

// ---- processes ----
const children = new Set()
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL")
})
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130))

/** Starts a server process and resolves with its base URL, read from its first line of output. */
const start = (name, command, argv, options = {}) =>
  new Promise((resolveUrl, reject) => {
    const child = spawn(command, argv, {
      cwd: options.cwd ?? root,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(child)
    let out = ""
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 30_000)
    child.stdout.on("data", (d) => {
      out += d
      const m = /listening on (http:\/\/[^\s]+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        child.stdout.removeAllListeners("data")
        child.stdout.resume()
        resolveUrl({ url: m[1], child, stop: () => stop(child) })
      }
    })
    child.stderr.on("data", (d) => (out += d))
    child.on("exit", (code) => {
      children.delete(child)
      clearTimeout(timer)
      reject(new Error(`${name} exited (${code}): ${out}`))
    })
  })

const stop = (child) =>
  new Promise((done) => {
    if (child.exitCode !== null) return done()
    child.once("exit", () => done())
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 5_000).unref()
  })

const rss = (pid) => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024
  } catch {
    return NaN
  }
}

// ---- load ----
const loadOne = (url, path, seconds, amount, connections) =>
  new Promise((done, fail) => {
    autocannon({
      url: url + path,
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      connections,
      ...(amount === undefined ? { duration: seconds } : { amount })
    }, (err, result) => (err ? fail(err) : done(result)))
  })

/** Load on one server, or split evenly over several (two gateway processes): rates add up, latencies are the worst. */
const load = async (urls, path, seconds, amount) => {
  const list = Array.isArray(urls) ? urls : [urls]
  const results = await Promise.all(
    list.map((u) => loadOne(u, path, seconds, amount && amount / list.length, CONNECTIONS / list.length))
  )
  return {
    requests: { average: results.reduce((a, r) => a + r.requests.average, 0) },
    latency: {
      p99: Math.max(...results.map((r) => r.latency.p99)),
      p50: Math.max(...results.map((r) => r.latency.p50))
    },
    non2xx: results.reduce((a, r) => a + r.non2xx, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    timeouts: results.reduce((a, r) => a + r.timeouts, 0)
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

// ---- servers ----
const limitServer = () => start("limit", process.execPath, [join(root, "bench/limit-server.mjs"), "0"])

const peerDir = join(work, "peer")
const peerSource = resolve(root, "../shared/bench-peers/fastify-jira-server")
const peerAvailable = existsSync(peerSource)
const ensurePeer = () => {
  if (!existsSync(join(peerDir, "node_modules/fastify"))) {
    rmSync(peerDir, { recursive: true, force: true })
    cpSync(peerSource, peerDir, { recursive: true })
    // npm 11 runs no dependency install scripts unless the project allows them: better-sqlite3 builds natively.
    const pkg = JSON.parse(readFileSync(join(peerDir, "package.json"), "utf8"))
    writeFileSync(
      join(peerDir, "package.json"),
      JSON.stringify({ ...pkg, allowScripts: { "better-sqlite3": true } }, null, 2)
    )
    console.error("installing the peer in .bench/peer …")
    execFileSync("npm", ["install", "--no-audit", "--no-fund"], { cwd: peerDir, stdio: "inherit" })
  }
}
const peerServer = (synchronous) =>
  start("peer", process.execPath, [
    join(peerDir, "server.mjs"),
    "--directory",
    join(work, "directory.json"),
    "--db",
    join(work, "peer.db"),
    "--port",
    String(18000 + Math.floor(Math.random() * 1000)),
    "--synchronous",
    synchronous
  ], { cwd: peerDir })

const cellgateServer = (store, extra = {}, importDirectory = true) => {
  const config = {
    server: { host: "127.0.0.1", port: 0 },
    store,
    ...(importDirectory ? { directory } : {}),
    ...extra
  }
  const file = join(work, `cellgate-${Math.random().toString(36).slice(2)}.json`)
  if (store.kind === "sqlite") { for (const s of ["", "-wal", "-shm"]) rmSync(store.path + s, { force: true }) }
  writeFileSync(file, JSON.stringify(config))
  // the `cellgate` executable as users run it (its shebang carries the runtime flags)
  return start("cellgate", join(root, "packages/http/bin/cellgate.js"), [
    "serve",
    "--config",
    file,
    "--no-worker",
    "--port",
    "0"
  ])
}

// ---- scenarios: each is [name, startServer, path]; a comparison alternates rounds between its members ----
const sqlite = (synchronous) => ({ kind: "sqlite", path: join(work, `cellgate-${synchronous}.db`), synchronous })
const comparisons = []
comparisons.push({
  title: "Jira Server, valid token + changelog → 202, SQLite synchronous=NORMAL",
  members: [
    ["limit (bare node:http)", limitServer, jiraPath(token)],
    ...(peerAvailable ? [["peer (Fastify, NORMAL)", () => peerServer("NORMAL"), jiraPath(token)]] : []),
    ["cellgate (NORMAL)", () => cellgateServer(sqlite("normal")), jiraPath(token)]
  ]
})
comparisons.push({
  title: "Jira Server, valid token + changelog → 202, SQLite synchronous=FULL",
  members: [
    ...(peerAvailable ? [["peer (Fastify, FULL)", () => peerServer("FULL"), jiraPath(token)]] : []),
    ["cellgate (FULL)", () => cellgateServer(sqlite("full")), jiraPath(token)]
  ]
})
comparisons.push({
  title: "Jira Server, invalid token → 200, nothing stored",
  members: [
    ["limit (bare node:http)", limitServer, jiraPath(badToken)],
    ["cellgate (invalid token)", () => cellgateServer(sqlite("normal")), jiraPath(badToken)]
  ]
})
// PostgreSQL: a fresh database per run (cellgate_bench), so that the outbox starts empty
const pgAdmin = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const postgres = { kind: "postgres", url: pgAdmin.replace(/\/[^/]*$/, "/cellgate_bench") }
const freshPostgres = () => {
  for (const sql of ["DROP DATABASE IF EXISTS cellgate_bench WITH (FORCE)", "CREATE DATABASE cellgate_bench"]) {
    execFileSync("psql", [pgAdmin, "-q", "-c", sql], { stdio: "ignore" })
  }
}
if (!QUICK) {
  comparisons.push({
    title: "Jira Server → 202 on PostgreSQL, one and two gateway processes",
    members: [
      ...(peerAvailable ? [["peer (Fastify, NORMAL)", () => peerServer("NORMAL"), jiraPath(token)]] : []),
      ["cellgate (PostgreSQL, 1 process)", () => (freshPostgres(), cellgateServer(postgres)), jiraPath(token)],
      ["cellgate (PostgreSQL, 2 processes)", async () => {
        freshPostgres()
        const a = await cellgateServer(postgres)
        const b = await cellgateServer(postgres, {}, false)
        return { url: [a.url, b.url], child: a.child, stop: () => Promise.all([a.stop(), b.stop()]) }
      }, jiraPath(token)]
    ]
  })
}

const results = []
if (peerAvailable) ensurePeer()
else console.error("../shared/bench-peers is absent: the peer column is left out")

for (const comparison of comparisons) {
  if (args.only && !comparison.title.toLowerCase().includes(args.only.toLowerCase())) continue
  console.error(`\n== ${comparison.title}`)
  const stats = comparison.members.map(() => ({ rps: [], p99: [], p50: [], non2xx: 0, errors: 0, rss: NaN }))
  for (let round = 0; round < ROUNDS; round++) {
    for (let m = 0; m < comparison.members.length; m++) {
      const [name, startServer, path] = comparison.members[m]
      const server = await startServer()
      await load(server.url, path, WARMUP)
      const r = await load(server.url, path, DURATION)
      stats[m].rps.push(r.requests.average)
      stats[m].p99.push(r.latency.p99)
      stats[m].p50.push(r.latency.p50)
      stats[m].non2xx += r.non2xx
      stats[m].errors += r.errors + r.timeouts
      stats[m].rss = rss(server.child.pid)
      console.error(`  round ${round + 1} ${name}: ${Math.round(r.requests.average)} req/s, p99 ${r.latency.p99} ms`)
      await server.stop()
    }
  }
  const rows = comparison.members.map(([name], m) => ({
    name,
    rps: median(stats[m].rps),
    p50: median(stats[m].p50),
    p99: median(stats[m].p99),
    non2xx: stats[m].non2xx,
    errors: stats[m].errors,
    rssMb: stats[m].rss
  }))
  results.push({ title: comparison.title, rows })
}

// ---- memory: RSS of cellgate (scenario 3, NORMAL) over one million webhooks ----
let memoryReport = ""
if (args.memory || (!QUICK && !args.only)) {
  console.error("\n== memory: one million webhooks through cellgate (NORMAL)")
  const server = await cellgateServer(sqlite("normal"))
  const rows = []
  let sent = 0
  for (const amount of [300_000, 300_000, 300_000, 100_000]) {
    const r = await load(server.url, jiraPath(token), 0, amount)
    sent += amount
    rows.push({
      sent,
      rssMb: rss(server.child.pid),
      rps: r.requests.average,
      non2xx: r.non2xx,
      errors: r.errors + r.timeouts
    })
    console.error(
      `  after ${sent}: RSS ${rss(server.child.pid).toFixed(0)} MB, ${Math.round(r.requests.average)} req/s`
    )
  }
  await server.stop()
  memoryReport =
    `\n### Memory: RSS of cellgate after N webhooks (scenario 3, NORMAL, no worker)\n\n| webhooks | RSS MB | req/s in the step | non-2xx | errors |\n|---|---|---|---|---|\n`
  for (const r of rows) {
    memoryReport += `| ${r.sent} | ${r.rssMb.toFixed(0)} | ${Math.round(r.rps)} | ${r.non2xx} | ${r.errors} |\n`
  }
  memoryReport += `\nGrowth between 600 000 and 900 000: ${(rows[2].rssMb - rows[1].rssMb).toFixed(1)} MB.\n`
}

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "—")
let report = `Benchmarks — ${new Date().toISOString()} — node ${process.version} — ${
  QUICK ? "quick" : "full"
} run (${ROUNDS} rounds × ${DURATION} s, ${CONNECTIONS} connections)\n`
for (const { rows, title } of results) {
  const cellgate = rows[rows.length - 1]
  report +=
    `\n### ${title}\n\n| server | req/s (median) | p50 ms | p99 ms | cellgate ÷ this | non-2xx | errors | RSS MB |\n|---|---|---|---|---|---|---|---|\n`
  for (const r of rows) {
    report += `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${
      r === cellgate ? "—" : fmt(cellgate.rps / r.rps, 2) + "×"
    } | ${r.non2xx} | ${r.errors} | ${fmt(r.rssMb)} |\n`
  }
}
report += memoryReport
console.log(report)
if (args.out) writeFileSync(args.out, report)
process.exit(0)
