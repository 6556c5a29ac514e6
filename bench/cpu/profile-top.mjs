// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the top functions by self time, as a share of busy time
// (idle excluded), and the share per source area (Effect runtime, cellgate, node internals, GC).
//
//   node bench/cpu/profile-top.mjs FILE.cpuprofile [--top 30]
import { readFileSync } from "node:fs"

const file = process.argv[2]
const top = Number(process.argv[process.argv.indexOf("--top") + 1] || 0) || 30
const profile = JSON.parse(readFileSync(file, "utf8"))
const self = new Map()
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const dt = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
let busy = 0
const areas = new Map()
const area = (url, name) => {
  if (name === "(garbage collector)") return "gc"
  if (name === "(program)") return "program"
  if (url.includes("/effect/")) return "effect"
  if (url.includes("/@effect/")) return "@effect/*"
  if (url.includes("better-sqlite3")) return "sqlite"
  if (url.includes("/packages/")) return "cellgate"
  if (url.includes("/jose/")) return "jose"
  if (url.startsWith("node:") || url === "") return "node"
  return "other"
}
for (const [id, t] of dt) {
  const n = byId.get(id)
  const { functionName, lineNumber, url } = n.callFrame
  if (functionName === "(idle)") continue
  busy += t
  const short = url.replace(/^.*node_modules\//, "").replace(/^.*\/packages\//, "packages/")
  const key = `${functionName || "(anonymous)"} ${short}:${lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + t)
  const a = area(url, functionName)
  areas.set(a, (areas.get(a) ?? 0) + t)
}
const pct = (t) => ((100 * t) / busy).toFixed(1).padStart(5) + " %"
console.log(`busy ${(busy / 1e6).toFixed(2)} s`)
for (const [a, t] of [...areas].sort((x, y) => y[1] - x[1])) console.log(`${pct(t)}  ${a}`)
console.log("")
for (const [k, t] of [...self].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`)

// --callers NAME: the call paths (up to 6 frames) that lead to NAME's self time
const callersOf = process.argv.includes("--callers") ? process.argv[process.argv.indexOf("--callers") + 1] : undefined
if (callersOf !== undefined) {
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const paths = new Map()
  for (const [id, t] of dt) {
    if (byId.get(id).callFrame.functionName !== callersOf) continue
    const frames = []
    for (let p = parent.get(id); p !== undefined && frames.length < 14; p = parent.get(p)) {
      const f = byId.get(p).callFrame
      frames.push(`${f.functionName || "(anon)"}@${f.url.replace(/^.*\//, "")}:${f.lineNumber + 1}`)
    }
    const key = frames.join(" < ")
    paths.set(key, (paths.get(key) ?? 0) + t)
  }
  console.log(`\ncallers of ${callersOf}:`)
  for (const [k, t] of [...paths].sort((x, y) => y[1] - x[1]).slice(0, 8)) console.log(`${pct(t)}  ${k}`)
}

// --inclusive NAME[,NAME…]: the share of busy time spent in NAME or below (each name's total, once per sample)
const inclusive = process.argv.includes("--inclusive")
  ? process.argv[process.argv.indexOf("--inclusive") + 1].split(",")
  : []
if (inclusive.length > 0) {
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const totals = new Map(inclusive.map((n) => [n, 0]))
  for (const [id, t] of dt) {
    if (byId.get(id).callFrame.functionName === "(idle)") continue
    const seen = new Set()
    for (let p = id; p !== undefined; p = parent.get(p)) {
      const f = byId.get(p).callFrame
      const label = `${f.functionName}@${f.url.replace(/^.*\//, "")}:${f.lineNumber + 1}`
      for (const n of inclusive) if (!seen.has(n) && (f.functionName === n || label.includes(n))) seen.add(n)
    }
    for (const n of seen) totals.set(n, totals.get(n) + t)
  }
  console.log("\ninclusive:")
  for (const [n, t] of totals) console.log(`${pct(t)}  ${n}`)
}
