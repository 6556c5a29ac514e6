// Unknown keys of the configuration file are errors naming the key and the one probably meant, computed from the
// schema itself: a property test over every key of a full configuration (each accepted; each one-letter typo
// refused, naming it), and the `cellgate` process on the typos of issue 15 (exit 2, nothing started).
import { Config } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { ensureBuilt, runCli, tempDir, writeJson } from "../support/Http.js"

const REGION_SECRET = "whsec_" + Buffer.from("the us region signing key 0123").toString("base64")

/** Every key the file knows today, each set. New keys of the schema must be added here (the last test says so). */
const FULL = {
  server: { host: "127.0.0.1", port: 8080, maxBodyBytes: 1000000, readTimeoutMs: 10000 },
  store: { kind: "sqlite", path: "./data/x.db", synchronous: "full" },
  control: { upstream: "http://control.test" },
  delivery: {
    pollIntervalMs: 500,
    requestTimeoutMs: 12000,
    maxAttempts: 10,
    backoffBaseMs: 180000,
    backoffRate: 1.4,
    backoffMaxMs: 3600000,
    jitter: 0.1,
    retryAfterMaxMs: 3600000,
    maxAgeMs: 259200000,
    skipOnFailureProviders: ["github"],
    concurrency: 16,
    leaseMs: 30000,
    claimBatch: 32,
    maxAnswerBytes: 1048576,
    fairShare: 2,
    drainSlice: 32,
    regionConcurrency: 4,
    adaptive: true
  },
  providers: {
    github: { webhookSecret: "gh" },
    slack: { signingSecret: "slack-secret", syncBudgetMs: 2000, replyHosts: ["hooks.slack.com"] },
    discord: {
      publicKey: "a".repeat(64),
      syncBudgetMs: 2000,
      apiBaseUrl: "https://discord.com/api/v10",
      replyHosts: ["discord.com"]
    }
  },
  shed: [{ provider: "github", integrationId: 12 }],
  telemetry: { otlpEndpoint: "http://127.0.0.1:4318", serviceName: "cellgate", sampleRatio: 1 },
  directory: {
    regions: [{ name: "us", url: "http://us.test", secret: REGION_SECRET }],
    organizations: [{ id: 1, slug: "acme", region: "us" }],
    integrations: [{
      id: 10,
      provider: "github",
      externalId: "1",
      status: "active",
      metadata: { webhookSecret: "w", sharedSecret: "s" }
    }],
    organizationIntegrations: [{ organizationId: 1, integrationId: 10, status: "active" }]
  }
}

type Path = ReadonlyArray<string | number>

/** Every key path of `value` whose parent object has a fixed set of keys (not the provider names of `providers`). */
const keyPaths = (value: unknown, path: Path = []): Array<Path> => {
  if (Array.isArray(value)) return value.flatMap((v, i) => keyPaths(v, [...path, i]))
  if (typeof value !== "object" || value === null) return []
  const open = Config.knownKeys(path).open
  return Object.entries(value).flatMap(([k, v]) => [
    ...(open && !Config.knownKeys(path).keys.includes(k) ? [] : [[...path, k]]),
    ...keyPaths(v, [...path, k])
  ])
}

const renamed = (value: unknown, path: Path, to: string): unknown => {
  const copy = structuredClone(value) as Record<string | number, unknown>
  let parent = copy
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>
  const from = path[path.length - 1]!
  const entries = Object.entries(parent).map(([k, v]) => [k === String(from) ? to : k, v] as const)
  for (const k of Object.keys(parent)) delete parent[k]
  for (const [k, v] of entries) parent[k] = v
  return copy
}

const oneEdit = (a: string, b: string) => {
  if (Math.abs(a.length - b.length) > 1 || a === b) return false
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const [x, y] = [a.slice(i), b.slice(i)]
  return x.slice(1) === y.slice(1) || x.slice(1) === y || x === y.slice(1)
}

const paths = keyPaths(FULL)
const typo = fc.tuple(
  fc.constantFrom(...paths),
  fc.constantFrom("insert", "delete", "replace"),
  fc.nat(),
  fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz")
).map(([path, edit, at, letter]) => {
  const key = String(path[path.length - 1])
  const i = at % (key.length + (edit === "insert" ? 1 : 0))
  const wrong = edit === "insert"
    ? key.slice(0, i) + letter + key.slice(i)
    : edit === "delete"
    ? key.slice(0, i) + key.slice(i + 1)
    : key.slice(0, i) + letter + key.slice(i + 1)
  return { path, key, wrong }
}).filter(({ path, wrong }) => wrong !== "" && !Config.knownKeys(path.slice(0, -1)).keys.includes(wrong))

describe("unknown keys (the schema's own keys, edit distance)", () => {
  it("the full configuration is valid", () => {
    const decoded = Config.decode(FULL, { env: {} })
    expect(Either.isRight(decoded) ? [] : decoded.left.issues).toEqual([])
  })

  it("the full configuration sets every key the schema knows (add new keys to FULL)", () => {
    const objects = (value: unknown, path: Path = []): Array<[Path, object]> =>
      Array.isArray(value)
        ? value.flatMap((v, i) => objects(v, [...path, i]))
        : typeof value === "object" && value !== null
        ? [[path, value], ...Object.entries(value).flatMap(([k, v]) => objects(v, [...path, k]))]
        : []
    for (const [path, object] of objects(FULL)) {
      // the store section is a union: one kind at a time
      if (path.join(".") === "store") continue
      for (const key of Config.knownKeys(path).keys) expect(Object.keys(object), path.join(".")).toContain(key)
    }
  })

  it.prop("every key path of the full configuration is accepted as written", [fc.constantFrom(...paths)], ([path]) => {
    expect(Config.knownKeys(path.slice(0, -1)).keys).toContain(String(path[path.length - 1]))
  })

  it.prop(
    "every one-letter typo of a known key is refused, naming its path and the key meant",
    [typo],
    ([{ key, path, wrong }]) => {
      const decoded = Config.decode(renamed(FULL, path, wrong), { env: {} })
      expect(Either.isLeft(decoded)).toBe(true)
      if (Either.isRight(decoded)) return
      const at = [...path.slice(0, -1), wrong].join(".")
      const issue = decoded.left.issues.find((i) => i.path === at)
      if (issue === undefined) {
        // a union's discriminator (`store.kind`): no member is chosen, the key meant is named as missing
        expect(decoded.left.issues).toContainEqual({ path: path.join("."), message: "is missing" })
        return
      }
      const meant = /^unknown key \(did you mean "([^"]+)"\?\)$/.exec(issue.message)?.[1]
      expect(meant, issue.message).toBeDefined()
      expect(meant === key || oneEdit(wrong.toLowerCase(), meant!.toLowerCase()), `${wrong} → ${meant}`).toBe(true)
    },
    { fastCheck: { numRuns: 300 } }
  )
})

describe("cellgate on a typo: exit 2, the path and the key meant, nothing started", () => {
  let tmp: ReturnType<typeof tempDir>
  beforeAll(() => {
    ensureBuilt()
    tmp = tempDir()
  })
  afterAll(() => tmp?.cleanup())

  const cases: Array<[string, unknown, string]> = [
    ["server.prot", { server: { prot: 8081 } }, "server.prot: unknown key (did you mean \"port\"?)"],
    ["sever", { sever: { port: 8081 } }, "sever: unknown key (did you mean \"server\"?)"],
    [
      "delivery.maxAtempts",
      { delivery: { maxAtempts: 3 } },
      "delivery.maxAtempts: unknown key (did you mean \"maxAttempts\"?)"
    ],
    ["directroy", { directroy: { regions: [] } }, "directroy: unknown key (did you mean \"directory\"?)"],
    [
      "a key inside a directory entry",
      { directory: { regions: [{ name: "us", url: "http://us.test", secert: REGION_SECRET }] } },
      "directory.regions.0.secert: unknown key (did you mean \"secret\"?)"
    ],
    [
      "a key inside an integration's metadata",
      {
        directory: {
          integrations: [{ id: 1, provider: "github", externalId: "1", metadata: { webhookSecrt: "x" } }]
        }
      },
      "directory.integrations.0.metadata.webhookSecrt: unknown key (did you mean \"webhookSecret\"?)"
    ]
  ]
  for (const [name, config, line] of cases) {
    it(name, async () => {
      const file = writeJson(tmp.dir, `typo-${name.replace(/\W/g, "_")}.json`, {
        store: { kind: "memory", ephemeral: true },
        ...(config as object)
      })
      const run = await runCli(["serve", "--config", file, "--port", "0"])
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(line)
      expect(run.stdout).not.toContain("listening")
    })
  }
})
