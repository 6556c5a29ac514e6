// Fair, adaptive delivery (docs/routing.md#fair-adaptive-delivery), measured with the real `cellgate serve` (SQLite,
// its built-in worker) and GitHub webhooks over HTTP; the regions are node:http stubs in this process, so the 202 and
// the region's arrival are read on one clock. Two scenarios, each run with the new behaviour on and off, same run:
//
//   a) fairness — one noisy integration sends N webhooks at once over 100 mailboxes (one tenant), while Q quiet
//      integrations (a tenant each) send one webhook a second each; the region answers 200 after 50 ms. Reported:
//      the quiet webhooks' delay from their 202 to their first delivery attempt (those whose 202 came during the
//      flood), and how long the flood took to drain. On: the defaults (fairShare 2, drainSlice 32). Off: fairShare 0,
//      drainSlice 0 (the first wave's claims and drains).
//   b) adaptive — a backlog of B webhooks over many mailboxes (stored by `serve --no-worker`, then drained by a
//      `serve` with its worker); the region answers 503 at once whenever more than 4 requests are in flight, else 200
//      after 50 ms, so its capacity is 4 / 50 ms = 80 deliveries/s. Reported: attempts, 503s, the drain time against
//      the capacity (B / 80 per s), and the adaptive limit seen on /metrics. On: `adaptive: true` (the default). Off:
//      `adaptive: false` (a fixed 16 per region). Both with a short backoff (backoffBaseMs 100, backoffMaxMs 1000,
//      maxAttempts 1000) so that "off" finishes, and strict mailboxes (skipOnFailureProviders []).
//
//   npx tsc -b && node bench/fairness/run.mjs [--quick] [--only fairness|adaptive]
//                                             [--noisy N] [--quiet Q] [--backlog B]
//
// Defaults: N 5 000, Q 20, B 1 500 (about 3 minutes in all); --quick: N 2 000, Q 10, B 600 (about 1.5 minutes).
import { execFileSync, spawn } from "node:child_process"
import { createHmac } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const bin = path.join(root, "packages/http/bin/cellgate.js")
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    noisy: { type: "string" },
    quiet: { type: "string" },
    backlog: { type: "string" }
  }
})
const QUICK = args.quick
const NOISY = Number(args.noisy ?? (QUICK ? 2_000 : 5_000))
const QUIET = Number(args.quiet ?? (QUICK ? 10 : 20))
const BACKLOG = Number(args.backlog ?? (QUICK ? 600 : 1_500))
const ANSWER_MS = 50
const REGION_CAPACITY = 4 // requests in flight the adaptive scenario's region takes
const SECRET = "bench fairness app secret"

if (!fs.existsSync(path.join(root, "packages/http/dist/Cli.js"))) {
  console.error("build first: npx tsc -b")
  process.exit(2)
}

// -- processes ------------------------------------------------------------------------------------------------------

const children = new Set()
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL")
})
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130))

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cellgate-bench-fairness-"))
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }))

/** `cellgate serve --config file --port 0 …`, resolved with its URL once it prints the listening line. */
const serve = (file, extra = []) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "serve", "--config", file, "--port", "0", ...extra], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(child)
    let out = ""
    let err = ""
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000)
    const onData = (d) => {
      out += d
      const m = /^cellgate listening on (http:\/\/\S+)\n/.exec(out)
      if (m) {
        clearTimeout(timer)
        // the JSON log lines that follow are read and dropped (a pipe nobody reads would block the gateway)
        child.stdout.off("data", onData)
        child.stdout.on("data", () => {})
        resolve({ url: m[1], stop: () => stop(child), stderr: () => err })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", (d) => (err += d))
    child.on("exit", (code) => {
      children.delete(child)
      clearTimeout(timer)
      reject(new Error(`serve exited (${code}): ${err}`))
    })
  })

const stop = (child) =>
  new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done()
    const t = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => {
      clearTimeout(t)
      done()
    })
    child.kill("SIGTERM")
  })

// -- the region stub ------------------------------------------------------------------------------------------------

/**
 * A region in this process. `decide(inFlight)` answers a request ({ status, delayMs }); every request is recorded
 * with the webhook's `bench` tag (from the body), its arrival and, for a 2xx, its answer time.
 */
const startRegion = async (decide) => {
  const region = {
    url: "",
    inFlight: 0,
    maxInFlight: 0,
    attempts: 0,
    refused: 0,
    /** tag → arrival of its first attempt */
    first: new Map(),
    /** tag → time its 2xx was sent */
    delivered: new Map(),
    sequences: new Map(),
    decide
  }
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.on("end", () => {
      const at = performance.now()
      region.inFlight++
      region.maxInFlight = Math.max(region.maxInFlight, region.inFlight)
      region.attempts++
      const tag = JSON.parse(Buffer.concat(chunks).toString("utf8")).bench
      if (!region.first.has(tag)) region.first.set(tag, at)
      const { status, delayMs } = region.decide(region.inFlight)
      if (status !== 200) region.refused++
      const answer = () => {
        region.inFlight--
        if (status === 200 && !region.delivered.has(tag)) region.delivered.set(tag, performance.now())
        res.writeHead(status, { "content-length": "0" })
        res.end()
      }
      if (delayMs > 0) setTimeout(answer, delayMs)
      else answer()
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise((r) => server.listen(0, "127.0.0.1", r))
  region.url = `http://127.0.0.1:${server.address().port}`
  region.close = () =>
    new Promise((r) => {
      server.close(() => r())
      server.closeAllConnections()
    })
  return region
}

// -- webhooks -------------------------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

/** One signed GitHub `issues` webhook of installation `installation`, repository `repository`, tagged `tag`. */
const webhook = (gateway, installation, repository, tag) =>
  new Promise((resolve, reject) => {
    const body = Buffer.from(JSON.stringify({
      action: "opened",
      installation: { id: installation },
      repository: { id: repository },
      issue: { number: 1, title: "x".repeat(200) },
      bench: tag
    }))
    const url = new URL(gateway)
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method: "POST",
      path: "/extensions/github/webhook/",
      agent,
      headers: {
        "content-type": "application/json",
        "content-length": String(body.length),
        "x-github-event": "issues",
        "x-hub-signature-256": "sha256=" + createHmac("sha256", SECRET).update(body).digest("hex")
      }
    }, (res) => {
      res.resume()
      res.on("end", () => {
        if (res.statusCode !== 202) reject(new Error(`webhook ${tag}: ${res.statusCode}`))
        else resolve(performance.now())
      })
    })
    req.on("error", reject)
    req.end(body)
  })

/** A directory of one region and one organization with `count` GitHub integrations (ids 1…count). */
const directory = (regionUrl, count) => ({
  regions: [{ name: "us", url: regionUrl }],
  organizations: [{ id: 1, slug: "acme", region: "us" }],
  integrations: Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    provider: "github",
    externalId: String(installationOf(i + 1))
  })),
  organizationIntegrations: Array.from({ length: count }, (_, i) => ({ organizationId: 1, integrationId: i + 1 }))
})
const installationOf = (integrationId) => 70_000 + integrationId

const config = (name, regionUrl, integrations, delivery) => {
  const file = path.join(tmp, `${name}.json`)
  fs.writeFileSync(
    file,
    JSON.stringify({
      server: { host: "127.0.0.1" },
      store: { kind: "sqlite", path: path.join(tmp, `${name}.db`) },
      providers: { github: { webhookSecret: SECRET } },
      delivery,
      directory: directory(regionUrl, integrations)
    })
  )
  return file
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const until = async (condition, timeoutMs, what) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(20)
  }
}
const quantile = (sorted, q) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
const ms = (v) => (Number.isNaN(v) ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`)
const sec = (v) => `${(v / 1000).toFixed(1)} s`

// -- a) fairness ----------------------------------------------------------------------------------------------------

/** Integration 1 is the noisy one (repositories 0…99: 100 mailboxes); 2…Q+1 the quiet ones (one mailbox each). */
const fairness = async (label, delivery) => {
  const region = await startRegion(() => ({ status: 200, delayMs: ANSWER_MS }))
  const file = config(`fairness-${label}`, region.url, 1 + QUIET, delivery)
  const gateway = await serve(file)
  try {
    const quiet = [] // { tag, at202 }
    let quietOn = true
    let quietErrors = 0
    const senders = Array.from({ length: QUIET }, async (_, i) => {
      const integration = 2 + i
      await sleep((1000 * i) / QUIET) // spread over the second
      for (let k = 0; quietOn; k++) {
        const tag = `q${integration}-${k}`
        const next = performance.now() + 1000
        try {
          quiet.push({ tag, at202: await webhook(gateway.url, installationOf(integration), integration, tag) })
        } catch {
          quietErrors++
        }
        await sleep(Math.max(0, next - performance.now()))
      }
    })
    await sleep(3_000) // the quiet traffic alone first

    const floodStart = performance.now()
    const tags = Array.from({ length: NOISY }, (_, i) => `n${i}`)
    const acks = await Promise.all(
      tags.map((tag, i) => webhook(gateway.url, installationOf(1), 1_000 + (i % 100), tag))
    )
    const ingested = Math.max(...acks) - floodStart
    await until(() => tags.every((t) => region.delivered.has(t)), 600_000, "the flood delivered")
    const drainEnd = Math.max(...tags.map((t) => region.delivered.get(t)))

    await sleep(1_000)
    quietOn = false
    await Promise.all(senders)
    await until(() => quiet.every((q) => region.first.has(q.tag)), 60_000, "the quiet webhooks delivered")

    const during = quiet.filter((q) => q.at202 >= floodStart && q.at202 <= drainEnd)
    const before = quiet.filter((q) => q.at202 < floodStart)
    const delays = (list) => list.map((q) => region.first.get(q.tag) - q.at202).sort((a, b) => a - b)
    const d = delays(during)
    const b = delays(before)
    return {
      label,
      delivery,
      quietDuring: d.length,
      p50: quantile(d, 0.5),
      p99: quantile(d, 0.99),
      max: d.length === 0 ? NaN : d[d.length - 1],
      idleP50: quantile(b, 0.5),
      ingested,
      drain: drainEnd - floodStart,
      quietErrors
    }
  } finally {
    await gateway.stop()
    await region.close()
  }
}

// -- b) adaptive ----------------------------------------------------------------------------------------------------

/** Samples `cellgate_region_concurrency{region="us"}` from /metrics until `stop()`. */
const sampleLimit = (gatewayUrl) => {
  const values = []
  let on = true
  const loop = (async () => {
    while (on) {
      try {
        const text = await (await fetch(`${gatewayUrl}/metrics`)).text()
        const m = /^cellgate_region_concurrency\{region="us"\} (\S+)$/m.exec(text)
        if (m) values.push(Number(m[1]))
      } catch {
        // the gateway is stopping
      }
      await sleep(200)
    }
  })()
  return {
    stop: async () => {
      on = false
      await loop
      return values
    }
  }
}

const adaptive = async (label, adaptiveOn) => {
  const region = await startRegion((inFlight) =>
    inFlight > REGION_CAPACITY ? { status: 503, delayMs: 0 } : { status: 200, delayMs: ANSWER_MS }
  )
  const integrations = 10
  const delivery = {
    adaptive: adaptiveOn,
    backoffBaseMs: 100,
    backoffMaxMs: 1_000,
    maxAttempts: 1_000,
    skipOnFailureProviders: []
  }
  const file = config(`adaptive-${label}`, region.url, integrations, delivery)
  // the backlog: stored by a gateway without a worker (BACKLOG webhooks, 10 integrations × 20 repositories)
  const ingest = await serve(file, ["--no-worker"])
  const tags = Array.from({ length: BACKLOG }, (_, i) => `b${i}`)
  try {
    await Promise.all(
      tags.map((tag, i) => webhook(ingest.url, installationOf(1 + (i % integrations)), 1_000 + (i % 20), tag))
    )
  } finally {
    await ingest.stop()
  }
  if (region.attempts !== 0) throw new Error("the ingest gateway delivered")

  const gateway = await serve(file)
  const sampler = sampleLimit(gateway.url)
  let limits
  try {
    await until(() => tags.every((t) => region.delivered.has(t)), 600_000, "the backlog delivered")
  } finally {
    limits = await sampler.stop()
    await gateway.stop()
    await region.close()
  }
  const start = Math.min(...region.first.values())
  const end = Math.max(...region.delivered.values())
  const capacity = (BACKLOG * ANSWER_MS) / REGION_CAPACITY
  return {
    label,
    delivery,
    attempts: region.attempts,
    refused: region.refused,
    drain: end - start,
    capacity,
    maxInFlight: region.maxInFlight,
    limitMean: limits.length ? limits.reduce((a, v) => a + v, 0) / limits.length : NaN,
    limitMax: limits.length ? Math.max(...limits) : NaN,
    limitMin: limits.length ? Math.min(...limits) : NaN
  }
}

// -- run ------------------------------------------------------------------------------------------------------------

const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim()
console.log(
  `bench/fairness${QUICK ? " --quick" : ""}: ${new Date().toISOString().slice(0, 10)}, commit ${head} ` +
    `(working tree may differ), ${os.cpus().length} CPUs, node ${process.version}, ` +
    `load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} at start`
)

if (args.only === undefined || args.only === "fairness") {
  const on = await fairness("on", {})
  const off = await fairness("off", { fairShare: 0, drainSlice: 0 })
  console.log(
    `\na) fairness: ${NOISY} webhooks at once from one integration over 100 mailboxes (one tenant), ${QUIET} quiet ` +
      `integrations (a tenant each) at one webhook a second each; one region answering 200 after ${ANSWER_MS} ms; ` +
      `SQLite, one serve, delivery defaults otherwise (concurrency 16)\n`
  )
  console.log(
    "| delivery | quiet webhooks during the flood | quiet p50 | quiet p99 | quiet max | quiet p50 before the flood | flood stored in | flood drained in |"
  )
  console.log("|---|---|---|---|---|---|---|---|")
  for (const r of [on, off]) {
    const name = r.label === "on" ? "fair (defaults: fairShare 2, drainSlice 32)" : "off (fairShare 0, drainSlice 0)"
    console.log(
      `| ${name} | ${r.quietDuring} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${ms(r.idleP50)} | ` +
        `${sec(r.ingested)} | ${sec(r.drain)} |`
    )
    if (r.quietErrors > 0) console.log(`(${r.label}: ${r.quietErrors} quiet webhooks not answered 202)`)
  }
  console.log(`\nGoal: quiet p99 < 2 s with fairness on (${on.p99 < 2000 ? "met" : "NOT met"}).`)
}

if (args.only === undefined || args.only === "adaptive") {
  const on = await adaptive("on", true)
  const off = await adaptive("off", false)
  console.log(
    `\nb) adaptive: a backlog of ${BACKLOG} webhooks over 200 mailboxes (10 integrations × 20 repositories); the ` +
      `region answers 503 at once above ${REGION_CAPACITY} requests in flight, else 200 after ${ANSWER_MS} ms ` +
      `(capacity ${Math.round((REGION_CAPACITY * 1000) / ANSWER_MS)}/s); backoffBaseMs 100, backoffMaxMs 1000, ` +
      `strict mailboxes; SQLite, one serve (concurrency 16)\n`
  )
  console.log(
    "| delivery | attempts | 503s | 503 share | drain time | capacity time | drain / capacity | limit on /metrics (min / mean / max) | most in flight |"
  )
  console.log("|---|---|---|---|---|---|---|---|---|")
  for (const r of [on, off]) {
    const name = r.label === "on" ? "adaptive (default, regionConcurrency 4)" : "fixed (adaptive: false)"
    const limit = Number.isNaN(r.limitMean)
      ? "–"
      : `${r.limitMin} / ${r.limitMean.toFixed(1)} / ${r.limitMax}`
    console.log(
      `| ${name} | ${r.attempts} | ${r.refused} | ${((100 * r.refused) / r.attempts).toFixed(1)} % | ` +
        `${sec(r.drain)} | ${sec(r.capacity)} | ${(r.drain / r.capacity).toFixed(2)}× | ${limit} | ${r.maxInFlight} |`
    )
  }
  const share = on.refused / on.attempts
  console.log(
    `\nGoal: < 10 % 503s (${share < 0.1 ? "met" : "NOT met"}) and drain ≤ 1.5× capacity ` +
      `(${on.drain <= 1.5 * on.capacity ? "met" : "NOT met"}) with the adaptive limit.`
  )
}
agent.destroy()
