// Issue #10 item 1: secrets never reach a log line or CLI output, whatever the spelling of the path. One structural
// redactor (core's `Redaction`) is property-tested over generated spellings that embed a real Jira Server token
// (minted with `jiraServerToken`) and a real JWT; then the gateway, `explain` and configuration errors are checked
// from outside.
import { jiraServerToken, Redaction } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { Config, makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Jose from "jose"
import { call, ensureBuilt, runCli, tempDir, writeJson } from "../support/Http.js"

const SECRET = "jira server token key, long enough"
const EXTERNAL = "jira.example.com:redaction"
const TOKEN = await jiraServerToken(EXTERNAL, SECRET)
const CLOUD_SECRET = "connect shared secret of the test"
const JWT = await new Jose.SignJWT({ iss: "client-key", qsh: "x" })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setExpirationTime("1h")
  .sign(new TextEncoder().encode(CLOUD_SECRET))

/** The secret part of a JWT: its signature (header and payload are not secret). */
const signatureOf = (jwt: string) => jwt.split(".")[2]!

/** What a reader of the output could recover: percent-decoded (repeatedly) with white space removed. */
const recoverable = (text: string): string => {
  let out = text
  for (let i = 0; i < 4; i++) out = out.replace(/%([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)))
  return out.replace(/\s+/g, "")
}

const survives = (output: string, jwt: string) =>
  output.includes(signatureOf(jwt)) || recoverable(output).includes(signatureOf(jwt))

// -- generators of spellings ----------------------------------------------------------------------------------

const anyCase = (word: string) =>
  fc.array(fc.boolean(), { minLength: word.length, maxLength: word.length }).map((upper) =>
    [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join("")
  )

const dash = fc.constantFrom("-", "_", "--", "-_", "__", "%2D", "%5F", "%2d", "-%5f")
const slash = fc.constantFrom("/", "//", "///", "/./", "%2F", "%2f", "/%2F")

const spelled = (words: ReadonlyArray<string>) =>
  fc.tuple(...words.map(anyCase), fc.array(dash, { minLength: words.length - 1, maxLength: words.length - 1 })).map(
    (parts) => {
      const seps = parts[parts.length - 1] as ReadonlyArray<string>
      const ws = parts.slice(0, -1) as ReadonlyArray<string>
      return ws.map((w, i) => (i === 0 ? w : seps[i - 1] + w)).join("")
    }
  )

/** A JWT with its dots (and maybe more) percent-encoded, maybe double-encoded, maybe padded with white space. */
const encodedJwt = (jwt: string) =>
  fc.tuple(
    fc.constantFrom(".", "%2E", "%2e", "%252E"),
    fc.constantFrom("", "%20", "%09", "+"),
    fc.constantFrom("", "%20", "%0A"),
    fc.boolean()
  ).map(([dot, before, after, encodeAll]) => {
    const body = encodeAll
      ? encodeURIComponent(jwt).replace(/[A-Za-z]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)
      : jwt
    return before + body.replaceAll(".", dot) + after
  })

const provider = fc.oneof(
  spelled(["jira", "server"]),
  fc.constantFrom("jira", "github", "bitbucket-server", "nope", "")
)
const issueUpdated = spelled(["issue", "updated"])
const query = fc.array(
  fc.oneof(
    fc.constantFrom("user_id=1", "a=b", "x", "=", "&"),
    anyCase("jwt").map((name) => `${name}=${JWT}`),
    encodedJwt(JWT).map((v) => `next=${v}`),
    encodedJwt(JWT).map((v) => `%6Awt=${v}`)
  ),
  { maxLength: 4 }
).map((pairs) => (pairs.length === 0 ? "" : `?${pairs.join("&")}`))

/** A path that holds the Jira Server token somewhere (segment after issue-updated, or anywhere as a JWT). */
const pathWithToken = fc.tuple(
  anyCase("extensions"),
  slash,
  provider,
  slash,
  issueUpdated,
  slash,
  encodedJwt(TOKEN),
  fc.constantFrom("/", "//", "", "/x/", "%2F"),
  query,
  fc.constantFrom("", "/", "//")
).map(([ext, s1, p, s2, iu, s3, token, trail, q, lead]) => `${lead}${ext}${s1}${p}${s2}${iu}${s3}${token}${trail}${q}`)

/** A path that holds a JWT in a query value or in an arbitrary segment. */
const pathWithJwt = fc.tuple(
  fc.array(fc.constantFrom("extensions", "jira", "issue", "x", "plugins", "..", ""), { maxLength: 4 }),
  encodedJwt(JWT),
  fc.constantFrom("segment", "query", "other query"),
  anyCase("jwt"),
  query
).map(([segments, jwt, where, name, q]) => {
  const base = `/${segments.join("/")}`
  if (where === "segment") return `${base}/${jwt}/${q}`
  return `${base}?${where === "query" ? name : "state"}=${jwt}${q.replace("?", "&")}`
})

describe("Redaction.redactPath (property)", () => {
  it.prop("the Jira Server token never survives, whatever the spelling", [pathWithToken], ([path]) => {
    const out = Redaction.redactPath(path)
    expect(survives(out, TOKEN), `${path} → ${out}`).toBe(false)
    expect(survives(out, JWT), `${path} → ${out}`).toBe(false)
    expect(Redaction.redactPath(out)).toBe(out)
  }, { fastCheck: { numRuns: 2_000 } })

  it.prop("a JWT never survives, in a segment or a query value", [pathWithJwt], ([path]) => {
    const out = Redaction.redactPath(path)
    expect(survives(out, JWT), `${path} → ${out}`).toBe(false)
  }, { fastCheck: { numRuns: 1_000 } })

  it.prop("free text that quotes such a path carries no secret", [pathWithToken], ([path]) => {
    for (
      const text of [`no route for POST ${path} (no control upstream)`, JSON.stringify({ path }), `"${path}"`]
    ) expect(survives(Redaction.redactText(text), TOKEN)).toBe(false)
  }, { fastCheck: { numRuns: 500 } })

  it("keeps the route readable and marks what it took out", () => {
    expect(Redaction.redactPath(`/extensions/jira-server/issue-updated/${TOKEN}/?user_id=1`)).toBe(
      "/extensions/jira-server/issue-updated/<token>/?user_id=1"
    )
    expect(Redaction.redactPath(`/extensions/jira_server//ISSUE--updated//${TOKEN}//`)).toBe(
      "/extensions/jira_server//ISSUE--updated//<token>//"
    )
    expect(Redaction.redactPath(`/extensions/jira/issue-updated/?a=1&jwt=${JWT}`)).toBe(
      "/extensions/jira/issue-updated/?a=1&jwt=<jwt>"
    )
    expect(Redaction.redactPath(`/extensions/x/${JWT}/`)).toBe("/extensions/x/<jwt>/")
    // what has no secret is left as it is
    for (const p of ["/extensions/github/webhook/", "/api/0/v1.2.3/", "/extensions/jira/issue/ABC-1/?a=b.c"]) {
      expect(Redaction.redactPath(p)).toBe(p)
    }
  })
})

// -- through the gateway --------------------------------------------------------------------------------------

let server: EmbeddedServer
const logs: Array<string> = []

beforeAll(async () => {
  server = await makeServer({
    server: { port: 0 },
    store: { kind: "memory", ephemeral: true },
    delivery: { pollIntervalMs: 60_000 },
    directory: {
      regions: [{ name: "us", url: "http://127.0.0.1:9" }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [
        { id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } },
        { id: 11, provider: "gitlab", externalId: "gitlab.test:g" },
        { id: 12, provider: "jira", externalId: "client-key", metadata: { sharedSecret: CLOUD_SECRET } }
      ],
      organizationIntegrations: [10, 11, 12].map((integrationId) => ({ organizationId: 1, integrationId }))
    }
  }, { worker: false, log: (line) => logs.push(line) })
})

afterAll(async () => {
  await server?.close()
})

describe("log lines of the gateway", () => {
  it("never carry a valid token, in any spelling of the route (routed, 202, or not)", async () => {
    const body = JSON.stringify({ changelog: { items: [] }, issue: { id: "1" } })
    const spellings = [
      `/extensions/jira_server/issue-updated/${TOKEN}/`, // routed: `_` is `-`
      `/extensions/jira-server/issue-updated/${TOKEN.replaceAll(".", "%2E")}/`, // routed: the token is decoded
      `/extensions/jira-server/issue-updated/%20${TOKEN}/`, // routed: the token is trimmed
      `/extensions/jira-server//issue-updated/${TOKEN}/`,
      `/extensions/jira-server/issue-updated//${TOKEN}/`,
      `//extensions/jira-server/issue-updated/${TOKEN}/`,
      `/extensions/JIRA-SERVER/issue-updated/${TOKEN}/`,
      `/extensions/jira--server/issue-updated/${TOKEN}/`,
      `/extensions/jira-server/Issue-Updated/${TOKEN}/`,
      `/extensions/jira-server/issue-updated/${TOKEN}`,
      `/extensions/jira-server/issue-updated/${TOKEN}/?jwt=${JWT}`,
      `/extensions/${TOKEN}/`,
      `/elsewhere/${TOKEN}`,
      `/extensions/jira/issue-updated/?jwt=${JWT}`
    ]
    const statuses: Array<number> = []
    for (const path of spellings) statuses.push((await call(server.url, path, { body })).status)
    // the first three really are accepted: the token is valid
    expect(statuses.slice(0, 3)).toEqual([202, 202, 202])
    await new Promise((r) => setTimeout(r, 50))
    const all = logs.join("\n")
    expect(all).toContain("<token>")
    expect(survives(all, TOKEN)).toBe(false)
    expect(survives(all, JWT)).toBe(false)
    expect(all).not.toContain(SECRET)
  })

  it("the \"provider routes unverified\" warning shows the key it names", async () => {
    await call(server.url, "/extensions/gitlab/webhook/", {
      body: "{}",
      headers: { "x-gitlab-token": "gitlab.test:g:x" }
    })
    const warning = logs.map((l) => JSON.parse(l)).find((l) =>
      String(l.message).startsWith("provider routes unverified")
    )
    expect(warning).toMatchObject({ provider: "gitlab", key: "integrations[].metadata.webhookSecret" })
    expect(JSON.stringify(warning)).not.toContain("<redacted>")
  })
})

// -- CLI output -----------------------------------------------------------------------------------------------

describe("cellgate explain", () => {
  const tmp = tempDir()
  let file: string
  beforeAll(() => {
    ensureBuilt()
    file = writeJson(tmp.dir, "cellgate.json", {
      store: { kind: "memory", ephemeral: true },
      directory: {
        regions: [{ name: "us", url: "http://127.0.0.1:9" }],
        organizations: [{ id: 1, slug: "acme", region: "us" }],
        integrations: [{ id: 10, provider: "jira_server", externalId: EXTERNAL, metadata: { webhookSecret: SECRET } }],
        organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
      }
    })
  })
  afterAll(() => tmp.cleanup())

  it("prints no token on stdout or stderr, routed or not", async () => {
    for (
      const path of [
        `/extensions/jira--server/issue-updated/${TOKEN}/`,
        `/extensions/${TOKEN}/x/`,
        `/extensions/jira_server/issue-updated/${TOKEN}/`
      ]
    ) {
      const run = await runCli(["explain", "--config", file, "--method", "POST", "--path", path])
      expect(run.code, run.stderr).toBe(0)
      expect(survives(run.stdout + run.stderr, TOKEN), run.stdout + run.stderr).toBe(false)
    }
  })

  it("a configuration error about a secret field exits 2 naming the path, without the value", async () => {
    const VALUE = "whsec_c2VjcmV0IHZhbHVlIG5ldmVyIHByaW50ZWQ"
    const bad = writeJson(tmp.dir, "bad.json", {
      store: { kind: "memory", ephemeral: true },
      providers: { github: { webhookSecret: { value: VALUE } } }
    })
    const run = await runCli(["explain", "--config", bad, "--method", "POST", "--path", "/x"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("providers.github.webhookSecret")
    expect(run.stdout + run.stderr).not.toContain(VALUE)
  })
})

// -- configuration errors -------------------------------------------------------------------------------------

describe("configuration errors about a secret field", () => {
  const VALUE = "whsec_c2VjcmV0IHZhbHVlIG5ldmVyIHByaW50ZWQ"
  const dir = (over: Record<string, unknown>) => ({
    regions: [{ name: "us", url: "http://127.0.0.1:9" }],
    organizations: [],
    integrations: [],
    organizationIntegrations: [],
    ...over
  })
  const wrong = [12345678987, { value: VALUE }, { Env: VALUE }, [VALUE], true]
  const cases = (v: unknown): ReadonlyArray<readonly [string, unknown]> => [
    ["directory.regions.0.secret", {
      directory: dir({ regions: [{ name: "us", url: "http://127.0.0.1:9", secret: v }] })
    }],
    [
      "directory.integrations.0.metadata.webhookSecret",
      {
        directory: dir({
          integrations: [{ id: 1, provider: "gitlab", externalId: "g", metadata: { webhookSecret: v } }]
        })
      }
    ],
    [
      "directory.integrations.0.metadata.sharedSecret",
      {
        directory: dir({ integrations: [{ id: 1, provider: "jira", externalId: "c", metadata: { sharedSecret: v } }] })
      }
    ],
    ["providers.github.webhookSecret", { providers: { github: { webhookSecret: v } } }],
    ["store.url", { store: { kind: "postgres", url: v } }]
  ]
  for (const v of wrong) {
    for (const [path, config] of cases(v)) {
      it(`${path} = ${Array.isArray(v) ? "an array" : typeof v}: names the path, never the value`, () => {
        const result = Config.decode({ store: { kind: "memory", ephemeral: true }, ...(config as object) }, { env: {} })
        expect(Either.isLeft(result)).toBe(true)
        const message = Either.isLeft(result) ? result.left.message : ""
        expect(message).toContain(path)
        expect(message).not.toContain(VALUE)
        expect(message).not.toContain("12345678987")
        expect(message).not.toContain("c2VjcmV0")
      })
    }
  }
})
