// The hostile-input suite (issue #10, "Done when"): generated paths, request targets, headers, bodies and tokens on
// every provider path, against a consistent directory (every organization's region exists) and reachable region
// stubs, through real HTTP on raw sockets. Every answer must be < 500 with the connection intact; no line the
// gateway writes may hold a secret; the metric label sets stay bounded. Seeds are random: fast-check prints the
// seed and path of a failure (replay with `fc.assert(…, { seed, path })`); HOSTILE_SHRINK=1 shrinks failures.
import { ProviderRegistry } from "@cellgate/core"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import type { RawReply, RawRequest, Tokens, ValidKind, World } from "./hostile-support.js"
import {
  CONTROL_BASE,
  GITLAB_TOKEN,
  headerValues,
  HOSTILE_ID,
  JIRA_CLOUD_CLIENT_KEY,
  JIRA_CLOUD_SECRET,
  JIRA_SERVER_BODY,
  jiraCloudJwt,
  leakedSecrets,
  MAX_BODY_BYTES,
  raw,
  startWorld,
  unsafe,
  VALID_KINDS,
  validRequest,
  VSTS_SECRET
} from "./hostile-support.js"

let world: World

beforeAll(async () => {
  world = await startWorld()
})

afterAll(async () => {
  await world?.close()
})

const TIMEOUT = 120_000
const options = (numRuns: number) => ({ numRuns, endOnFailure: process.env.HOSTILE_SHRINK !== "1" })

let nextId = 0
const hostileId = () => `h${++nextId}`

/** Sends `request` and fails (naming the issue item) on a 5xx, a reset, no answer, or a secret in a new log line. */
const send = async (
  request: RawRequest,
  sendOptions: { readonly continueFirst?: boolean; readonly timeoutMs?: number } = {}
): Promise<RawReply> => {
  const from = world.logs.length
  const reply = await raw(world.port, request, sendOptions)
  const problem = unsafe(reply)
  const what = `${request.method} ${request.target.slice(0, 300)}`
  if (problem !== undefined) throw new Error(`${what}: ${problem}`)
  const leaks = leakedSecrets(world.logs.slice(from), world.secrets)
  if (leaks.length > 0) {
    throw new Error(`${what}: secret in a log line (issue #10 item 1, redaction): ${leaks.join(", ")}`)
  }
  return reply
}

// generators ---------------------------------------------------------------------------------------------------

const PROVIDER_SPELLINGS = [
  "jira-server",
  "github",
  "github-enterprise",
  "gitlab",
  "jira",
  "bitbucket",
  "bitbucket-server",
  "vsts",
  "msteams",
  "slack",
  "discord",
  "vercel",
  "google"
] as const

const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, "0")
  return "%" + (upper ? h.toUpperCase() : h)
}

interface Spelling {
  readonly letterCase: "as-is" | "upper" | "title" | "alternate"
  readonly separator: string
  readonly encode: ReadonlyArray<number>
  readonly upperHex: boolean
}

const spelling: fc.Arbitrary<Spelling> = fc.record({
  letterCase: fc.constantFrom("as-is", "as-is", "upper", "title", "alternate"),
  separator: fc.constantFrom("-", "-", "_", "--", "__", "-_", ""),
  encode: fc.array(fc.nat(40), { maxLength: 3 }),
  upperHex: fc.boolean()
})

/** `name` spelled another way: letter case, `-`/`_`/doubled separators, some characters percent-encoded. */
const spell = (name: string, s: Spelling): string => {
  let out = name.replaceAll("-", s.separator)
  if (s.letterCase === "upper") out = out.toUpperCase()
  else if (s.letterCase === "title") out = out.charAt(0).toUpperCase() + out.slice(1)
  else if (s.letterCase === "alternate") {
    out = [...out].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join("")
  }
  if (out.length === 0) return out
  const chars = [...out]
  for (const i of s.encode) chars[i % chars.length] = hex(out.charAt(i % chars.length), s.upperHex)
  return chars.join("")
}

type Mutation =
  | { readonly kind: "double" | "dot" | "dotdot-out"; readonly at: number }
  | { readonly kind: "dotdot"; readonly at: number; readonly segment: string; readonly dots: string }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom("double" as const, "dot" as const, "dotdot-out" as const), at: fc.nat(8) }),
  fc.record({
    kind: fc.constant("dotdot" as const),
    at: fc.nat(8),
    segment: fc.constantFrom("x", "extensions", "jira-server", "github", "issue-updated", "webhook"),
    dots: fc.constantFrom("..", "..", "%2e%2e", "%2E%2E", ".%2e", "%2e.")
  })
)

/** Segments → a path, with slashes doubled and dot segments (plain or `%2e%2e`) inserted. */
const pathOf = (segments: ReadonlyArray<string>, mutations: ReadonlyArray<Mutation>, trailingSlash: boolean) => {
  const segs = [...segments]
  for (const m of mutations) {
    const at = m.at % (segs.length + 1)
    if (m.kind === "dotdot") segs.splice(at, 0, m.segment, m.dots)
    else segs.splice(at, 0, m.kind === "double" ? "" : m.kind === "dot" ? "." : "..")
  }
  return "/" + segs.join("/") + (trailingSlash ? "/" : "")
}

const tokenOf = (tokens: Tokens, which: "jiraServer" | "jiraCloud" | "stranger") => tokens[which]
const jwtChoice = fc.constantFrom("jiraServer" as const, "jiraCloud" as const, "stranger" as const)

/** The rest of a path after the provider segment: every provider's routes, known control paths, junk. */
const rest = (token: string): fc.Arbitrary<ReadonlyArray<string>> =>
  fc.oneof(
    fc.constantFrom<ReadonlyArray<string>>(
      ["issue-updated", token],
      ["issue-updated"],
      ["webhook"],
      ["issue", "APP-123"],
      ["organizations", "1", "webhook"],
      ["organizations", "2", "webhook", "80"],
      ["setup"],
      ["link"],
      ["search", "acme", "10"],
      ["descriptor"],
      ["installed"],
      ["interactions"],
      ["event"],
      ["commands"],
      []
    ),
    fc.array(fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/), { maxLength: 5 })
  )

const madeUpProvider = fc.stringMatching(/^[a-z][a-z0-9-]{0,24}$/)

const QUERIES = ["", "?jwt=J", "?user_id=1&jwt=J", "?jwt=J&x=1", "?a=b", "?xdm_e=https%3A%2F%2Fx&jwt=J"] as const

const methods = fc.constantFrom("GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")

/** Headers that make a request pass a provider's check (so spelled paths reach the providers' code). */
const credentialHeaders = (tokens: Tokens): fc.Arbitrary<ReadonlyArray<readonly [string, string]>> =>
  fc.subarray<readonly [string, string]>([
    ["authorization", `JWT ${tokens.jiraCloud}`],
    ["x-gitlab-token", GITLAB_TOKEN],
    ["shared-secret", VSTS_SECRET],
    ["content-type", "application/json"]
  ])

// properties ---------------------------------------------------------------------------------------------------

describe("hostile paths", () => {
  it("every provider prefix, spelled every way, with JWT segments and ?jwt= → < 500, no secret logged", async () => {
    const arb = fc.record({
      provider: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PROVIDER_SPELLINGS) }, {
        weight: 1,
        arbitrary: madeUpProvider
      }),
      spelling,
      jwt: jwtChoice,
      jwtSegmentAt: fc.option(fc.nat(6)),
      mutations: fc.array(mutation, { maxLength: 3 }),
      trailingSlash: fc.boolean(),
      query: fc.constantFrom(...QUERIES),
      method: methods,
      oversized: fc.nat(19).map((n) => n === 0),
      prefix: fc.constantFrom("extensions", "extensions", "extensions", "Extensions", "%65xtensions")
    }).chain((r) => rest(tokenOf(world.tokens, r.jwt)).map((segments) => ({ ...r, rest: segments })))
    await fc.assert(
      fc.asyncProperty(arb, credentialHeaders(world.tokens), async (r, headers) => {
        const token = tokenOf(world.tokens, r.jwt)
        const segments = [r.prefix, spell(r.provider, r.spelling), ...r.rest]
        if (r.jwtSegmentAt !== null) segments.splice(1 + (r.jwtSegmentAt % segments.length), 0, token)
        const target = pathOf(segments, r.mutations, r.trailingSlash) + r.query.replace("J", token)
        const body = r.oversized
          ? Buffer.alloc(MAX_BODY_BYTES + 1, 0x7b)
          : r.method === "GET" || r.method === "HEAD"
          ? undefined
          : JIRA_SERVER_BODY
        await send({ method: r.method, target, headers: [[HOSTILE_ID, hostileId()], ...headers], body })
      }),
      options(300)
    )
  }, TIMEOUT)

  it("the Jira Server webhook path with a valid token, in every spelling → < 500, the token never logged", async () => {
    const tokenSpelling = fc.record({
      encode: fc.array(fc.nat(300), { maxLength: 4 }),
      upperHex: fc.boolean(),
      pad: fc.constantFrom("", "", "%20", "%09", "+")
    })
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(
        spelling,
        tokenSpelling,
        fc.array(mutation, { maxLength: 3 }),
        fc.constantFrom(...QUERIES),
        fc.constantFrom("extensions", "extensions", "Extensions"),
        async (s, t, mutations, query, prefix) => {
          const jwt = world.tokens.jiraServer
          const chars = [...jwt]
          for (const i of t.encode) chars[i % chars.length] = hex(jwt.charAt(i % chars.length), t.upperHex)
          const token = t.pad + chars.join("") + t.pad
          const target = pathOf([prefix, spell("jira-server", s), "issue-updated", token], mutations, true) +
            query.replace("J", world.tokens.jiraCloud)
          const reply = await send({
            method: "POST",
            target,
            headers: [[HOSTILE_ID, hostileId()], ["content-type", "application/json"]],
            body: JIRA_SERVER_BODY
          })
          if (reply.final!.status === 202) accepted++
        }
      ),
      options(250)
    )
    // not vacuous: spellings that route (`jira_server`, an encoded letter…) were accepted with the token
    expect(accepted).toBeGreaterThan(0)
  }, TIMEOUT)
})

const HEADER_NAMES = [
  "x-cellgate-signature",
  "X-Cellgate-Region",
  "x-cellgate-attempt",
  "x-cellgate-delivery-id",
  "x-cellgate-mailbox",
  "x-cellgate-sequence",
  "X-CELLGATE-TIMESTAMP",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "authorization",
  "x-gitlab-token",
  "shared-secret",
  "x-hub-signature-256",
  "x-hub-signature",
  "cookie",
  "content-type",
  "user-agent",
  "x-forwarded-for",
  "x-forwarded-host",
  "forwarded",
  "x-github-event",
  "x-github-enterprise-host",
  "x-event-key",
  "x-atlassian-webhook-identifier",
  "te",
  "trailer",
  "keep-alive",
  "proxy-authorization",
  "accept-encoding",
  "content-encoding"
] as const

const FRAMING = new Set(["content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"])

const headerValue = (tokens: Tokens): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n\0]/g, "")) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        `JWT ${tokens.jiraCloud}`,
        `JWT ${tokens.jiraServer}`,
        `Bearer ${tokens.stranger}`,
        GITLAB_TOKEN,
        VSTS_SECRET,
        "gzip",
        "chunked",
        "v1,spoofed",
        "1",
        "",
        " ",
        "\t",
        "é".normalize("NFC")
      )
    },
    { weight: 1, arbitrary: fc.integer({ min: 500, max: 7_000 }).map((n) => "v".repeat(n)) }
  )

const headerName = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}$/) },
  { weight: 4, arbitrary: fc.constantFrom(...HEADER_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom("bad name", "x:y", "ünï", "x\ty") }
).filter((n) => !FRAMING.has(n.toLowerCase()))

/** Up to a few hundred headers (duplicates, odd names, huge values) that stay within node's 16 KiB header limit. */
const headerSet = (tokens: Tokens): fc.Arbitrary<ReadonlyArray<readonly [string, string]>> =>
  fc.array(fc.tuple(headerName, headerValue(tokens), fc.nat(3)), { maxLength: 300 }).map((list) => {
    const out: Array<readonly [string, string]> = []
    let size = 0
    for (const [name, value, copies] of list) {
      for (let i = 0; i <= (copies === 3 ? 1 : 0); i++) {
        size += name.length + value.length + 4
        if (size > 13_000) return out
        out.push([name, value])
      }
    }
    return out
  })

describe("hostile headers and bodies", () => {
  it("random header sets on every provider's valid request → < 500, no secret logged", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...VALID_KINDS),
        headerSet(world.tokens),
        fc.boolean(),
        async (kind, extra, first) => {
          const valid = await validRequest(kind, world.tokens)
          const headers = first ? [...extra, ...valid.headers] : [...valid.headers, ...extra]
          await send({ ...valid, headers: [[HOSTILE_ID, hostileId()], ...headers] })
        }
      ),
      options(250)
    )
  }, TIMEOUT)

  const body: fc.Arbitrary<Buffer> = fc.oneof(
    fc.constant(Buffer.alloc(0)),
    fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
    fc.constantFrom(
      "{",
      "[",
      "{\"a\":",
      "null",
      "true",
      "0",
      "\"str\"",
      "[]",
      "{}",
      "{\"changelog\":null}",
      "{\"changelog\":{}}",
      "{\"changelog\":{\"items\":[]},\"issue\":{\"id\":\"99999999999999999999999\"}}",
      "{\"installation\":{\"id\":\"777001\"}}",
      "{\"installation\":{\"id\":777001},\"repository\":{\"id\":-1}}",
      "{\"__proto__\":{\"polluted\":1},\"constructor\":{\"prototype\":{\"x\":1}}}",
      "{\"resourceContainers\":{\"collection\":{\"id\":{\"$ne\":null}}}}",
      "{\"type\":\"message\",\"value\":{\"payload\":{\"integrationId\":\"60\"}}}",
      "\uFEFF{}",
      "{\"a\":1}\u0000"
    ).map((s) => Buffer.from(s)),
    fc.integer({ min: 100, max: 50_000 }).map((d) => Buffer.from("[".repeat(d) + "]".repeat(d))),
    fc.integer({ min: 100, max: 20_000 }).map((d) => Buffer.from("{\"changelog\":".repeat(d) + "1" + "}".repeat(d))),
    fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
    fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 30 })).map((o) =>
      Buffer.from(new URLSearchParams(o).toString())
    ),
    fc.jsonValue({ maxDepth: 6 }).map((v) => Buffer.from(JSON.stringify(v))),
    fc.integer({ min: MAX_BODY_BYTES - 4, max: MAX_BODY_BYTES + 4 }).map((n) => Buffer.alloc(n, 0x20))
  )

  it(
    "random bodies (empty, invalid, deep, binary, form-encoded, at the limit) on every provider path → < 500",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...VALID_KINDS),
          body,
          fc.constantFrom("application/json", "application/x-www-form-urlencoded", "application/octet-stream", null),
          async (kind: ValidKind, b, contentType) => {
            const valid = await validRequest(kind, world.tokens, b)
            const headers = valid.headers.filter(([k]) => k !== "content-type")
            if (contentType !== null) headers.push(["content-type", contentType])
            await send({ ...valid, method: valid.method === "GET" ? "POST" : valid.method, headers, body: b })
          }
        ),
        options(200)
      )
    },
    TIMEOUT
  )
})

/** A received path stays under the control upstream's base path: prefix, and no dot segment, plain or encoded. */
const underBase = (path: string) => {
  const bare = path.split("?")[0]!
  if (bare !== CONTROL_BASE && !bare.startsWith(CONTROL_BASE + "/")) return false
  return bare.split("/").every((s) => {
    let d = s
    try {
      d = decodeURIComponent(s)
    } catch {
      // not decodable: compared as is
    }
    return d !== "." && d !== ".."
  })
}

const receivedWith = (id: string) => {
  const all = [world.control, world.regions.us, world.regions.eu, world.regions.de]
  return all.flatMap((stub) => stub.received.filter((r) => r.headers[HOSTILE_ID] === id).map((r) => ({ stub, r })))
}

describe("hostile request targets (raw socket)", () => {
  const TARGETS = [
    "*",
    "http://evil/x",
    "http://evil",
    "https://evil/x?y=1",
    "http://127.0.0.1/extensions/github/webhook/",
    "//double",
    "//evil/x",
    "/%2e%2e/",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..",
    "/../x",
    "/./x",
    "/%2E%2E%2Fx",
    "/a/../../x",
    "x",
    "?x",
    "/extensions/../../x",
    "/extensions/%2e%2e/%2e%2e/x",
    "/api/0/../../../x",
    "/api/%2e%2e/%2e%2e/x",
    "/%2f%2f/evil",
    "/\\evil",
    "/a?b=../../c",
    "/extensions/jira-server/../../../x/",
    "/extensions/nope/%2e%2e/%2e%2e/%2e%2e/x"
  ] as const

  const target = fc.oneof(
    fc.constantFrom(...TARGETS),
    fc.array(
      fc.constantFrom("..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e", "api", "x", "", "%2f", "%5c", "extensions", "nope"),
      {
        maxLength: 8
      }
    ).map((segs) => "/" + segs.join("/")),
    fc.webUrl({ withQueryParameters: true }).map((u) => u.slice(0, 200))
  )

  it(
    "`*`, absolute-form, `//double`, dot segments, with any method → < 500 (400 for non-paths), never above the control base path",
    async () => {
      await fc.assert(
        fc.asyncProperty(target, methods, async (t, method) => {
          const id = hostileId()
          const reply = await send({
            method,
            target: t,
            headers: [[HOSTILE_ID, id]],
            body: method === "GET" || method === "HEAD" ? undefined : Buffer.from("{}")
          })
          if (t === "*" || /^[a-z]+:\/\//i.test(t)) {
            expect(reply.final!.status, `${method} ${t}: a target that is not a path (item 3/D)`).toBe(400)
          }
          for (const { r, stub } of receivedWith(id)) {
            if (stub === world.control) {
              expect(underBase(r.path), `${method} ${t} reached the control upstream as ${r.path} (item 3)`).toBe(true)
            }
          }
        }),
        options(300)
      )
    },
    TIMEOUT
  )

  it("CONNECT gets an answer, not a dropped connection", async () => {
    for (const t of ["evil:443", "127.0.0.1:80", "/extensions/github/webhook/"]) {
      await send({ method: "CONNECT", target: t, headers: [] })
    }
  })

  it("headers named in Connection (and hop-by-hop headers) never reach the control upstream or a region", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("control" as const, "jira_cloud_issue" as const),
        fc.array(fc.stringMatching(/^x-[a-z0-9-]{1,16}$/), { minLength: 1, maxLength: 4 }),
        async (kind, names) => {
          const valid = await validRequest(kind, world.tokens)
          const id = hostileId()
          const hop = [...new Set(names)]
          await send({
            ...valid,
            headers: [
              [HOSTILE_ID, id],
              ...valid.headers,
              ["connection", ["close", ...hop].join(", ")],
              ...hop.map((n): readonly [string, string] => [n, "hop-value"]),
              ["keep-alive", "timeout=5"],
              ["te", "trailers"],
              ["trailer", "x-trailing"],
              ["proxy-authorization", "Basic c2VjcmV0"]
            ]
          })
          const got = receivedWith(id)
          expect(got.length, `${kind}: the request reached its upstream`).toBeGreaterThan(0)
          for (const { r } of got) {
            for (const n of [...hop, "keep-alive", "te", "trailer", "proxy-authorization"]) {
              expect(r.headers[n], `${kind}: ${n} (named in Connection or hop-by-hop) was forwarded (item 3)`)
                .toBeUndefined()
            }
          }
        }
      ),
      options(100)
    )
  }, TIMEOUT)
})

describe("captured path segments and Jira Cloud answers", () => {
  // the shape of an issue key, letter case aside (Jira answers `app-1` as `APP-1`): anything else must not pass
  const ISSUE_KEY = /^[A-Z][A-Z0-9_]*-\d+$/i
  const decoded = (s: string) => {
    try {
      return decodeURIComponent(s)
    } catch {
      return s
    }
  }
  const segment = fc.oneof(
    fc.constantFrom(
      "%2e%2e%2f",
      "%2e%2e%2f%2e%2e%2fx",
      "..%2f..%2f",
      "%2e%2e",
      "%2E%2E",
      ".%2e",
      "%2f",
      "a%2fb",
      "1%2f..%2f2",
      "APP-1%2f..%2f..",
      "APP-1%00",
      "%00",
      "1%20OR%201%3D1",
      "-1",
      "1e3",
      "0x10",
      "%EF%BC%91%EF%BC%92",
      "APP-1%3Fx%3D1",
      "app-1",
      "APP-",
      "-1",
      "APP-1.json"
    ),
    fc.string({ minLength: 1, maxLength: 20 }).map((s) => encodeURIComponent(s))
  )

  it("a Bitbucket Server integration id that is not digits is never enqueued (202)", async () => {
    await fc.assert(
      fc.asyncProperty(segment.filter((s) => !/^\d+$/.test(decoded(s))), async (s) => {
        const target = `/extensions/bitbucket-server/organizations/2/webhook/${s}/`
        const reply = await send({
          method: "POST",
          target,
          headers: [[HOSTILE_ID, hostileId()], ["content-type", "application/json"]],
          body: Buffer.from("{}")
        })
        expect(reply.final!.status, `${target} was accepted for delivery (item 4)`).not.toBe(202)
      }),
      options(150)
    )
  }, TIMEOUT)

  it("a Jira Cloud issue key of another shape is never forwarded to a region, even with a valid JWT", async () => {
    await fc.assert(
      fc.asyncProperty(segment.filter((s) => !ISSUE_KEY.test(decoded(s))), async (s) => {
        const target = `/extensions/jira/issue/${s}/`
        const id = hostileId()
        const reply = await send({
          method: "GET",
          target,
          headers: [[HOSTILE_ID, id], ["authorization", `JWT ${await jiraCloudJwt("GET", target)}`]]
        })
        const regions = receivedWith(id).filter(({ stub }) => stub !== world.control)
        expect(regions.map(({ r }) => r.path), `${target} was forwarded to a region (item 4)`).toEqual([])
        expect(headerValues(reply, "x-cellgate-region"), `${target} relayed a region's answer (item 4)`).toEqual([])
      }),
      options(150)
    )
  }, TIMEOUT)

  it("Jira Cloud answers every invalid JWT with one message (no hint whether a clientKey exists)", async () => {
    const target = "/extensions/jira/issue-updated/"
    const reference = await send({
      method: "POST",
      target,
      headers: [["authorization", `JWT ${await jiraCloudJwt("POST", target, JIRA_CLOUD_SECRET, "no-such-client")}`]],
      body: Buffer.from("{}")
    })
    expect(reference.final!.status).toBe(404)
    const invalid = fc.oneof(
      fc.string({ minLength: 8, maxLength: 24 }).map((secret) => ({
        iss: JIRA_CLOUD_CLIENT_KEY,
        secret,
        path: target
      })),
      fc.string({ minLength: 1, maxLength: 24 }).map((iss) => ({ iss, secret: JIRA_CLOUD_SECRET, path: target })),
      fc.constant({ iss: JIRA_CLOUD_CLIENT_KEY, secret: JIRA_CLOUD_SECRET, path: "/extensions/jira/other/" })
    )
    await fc.assert(
      fc.asyncProperty(invalid, async ({ iss, path, secret }) => {
        if (iss === JIRA_CLOUD_CLIENT_KEY && secret === JIRA_CLOUD_SECRET && path === target) return
        const reply = await send({
          method: "POST",
          target,
          headers: [["authorization", `JWT ${await jiraCloudJwt("POST", path, secret, iss)}`]],
          body: Buffer.from("{}")
        })
        expect(reply.final!.status).toBe(404)
        expect(reply.final!.body.toString("utf8"), "one 404 message for every invalid JWT (item 5)").toBe(
          reference.final!.body.toString("utf8")
        )
      }),
      options(100)
    )
  }, TIMEOUT)

  it("a relayed region answer keeps its two Set-Cookie headers apart", async () => {
    const reply = await send(await validRequest("jira_cloud_issue", world.tokens))
    expect(reply.final!.status).toBe(200)
    // the first region of the integration's organizations (us, eu), sorted by name
    expect(headerValues(reply, "x-cellgate-region")).toEqual(["eu"])
    expect(headerValues(reply, "set-cookie"), "repeated headers kept separate (item 10)").toEqual([
      "a=1; Path=/",
      "b=2; Path=/"
    ])
  })
})

describe("transport: 100-continue and the hop", () => {
  it("Expect: 100-continue with a declared length over the limit → 413 at once, never 100 Continue", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...VALID_KINDS),
        fc.oneof(
          fc.integer({ min: MAX_BODY_BYTES + 1, max: MAX_BODY_BYTES * 64 }),
          fc.integer({ min: 0, max: 2048 })
        ),
        async (kind, length) => {
          const valid = await validRequest(kind, world.tokens)
          const over = length > MAX_BODY_BYTES
          const reply = await send({
            method: valid.method === "GET" ? "POST" : valid.method,
            target: valid.target,
            headers: [...valid.headers, ["expect", "100-continue"], ["content-length", String(length)]],
            body: over ? undefined : Buffer.alloc(length, 0x20)
          }, { continueFirst: true, timeoutMs: 3_000 })
          if (over) {
            expect(reply.statuses, `declared ${length} > ${MAX_BODY_BYTES}: answered (item 13)`).toEqual([413])
          }
        }
      ),
      options(60)
    )
  }, TIMEOUT)

  it("at most 100 sender headers reach a region, and no spoofed x-cellgate-* header", async () => {
    const base = JSON.parse(JIRA_SERVER_BODY.toString("utf8"))
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 101, max: 300 }), async (n) => {
        const id = hostileId()
        const valid = await validRequest(
          "jira_server",
          world.tokens,
          Buffer.from(JSON.stringify({ ...base, hostile: id }))
        )
        const reply = await send({
          ...valid,
          headers: [
            ["x-cellgate-delivery-id", `spoofed-${id}`],
            ["X-Cellgate-Region", `spoofed-${id}`],
            ...valid.headers,
            ...Array.from({ length: n }, (_, i): readonly [string, string] => [`x-h-${i}`, "v"])
          ]
        })
        expect(reply.final!.status).toBe(202)
        const deliveries = await waitForBody(id, 2)
        for (const r of deliveries) {
          const sender = Object.keys(r.headers).filter((k) =>
            !k.startsWith("x-cellgate-") && !["host", "content-length", "connection", "transfer-encoding"].includes(k)
          )
          expect(sender.length, `${n} sender headers: forwarded on the hop (item 12)`).toBeLessThanOrEqual(100)
          expect(Object.values(r.headers).join(" ")).not.toContain(`spoofed-${id}`)
        }
      }),
      options(15)
    )
  }, TIMEOUT)
})

const waitForBody = async (id: string, n: number) => {
  const deadline = Date.now() + 10_000
  for (;;) {
    const got = [world.regions.us, world.regions.eu, world.regions.de].flatMap((s) =>
      s.received.filter((r) => r.body.includes(`"hostile":"${id}"`))
    )
    if (got.length >= n) return got
    if (Date.now() > deadline) {
      throw new Error(
        `${got.length} of ${n} deliveries of ${id} arrived in 10 s (item 12: the region refused the hop?)`
      )
    }
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe("after everything", () => {
  it("/metrics stays small: provider labels only from the bounded set", async () => {
    const known = await world.gateway.runPromise(
      Effect.map(ProviderRegistry.ProviderRegistry, (r) => r.all.map((p) => p.name))
    )
    const reply = await send({ method: "GET", target: "/metrics", headers: [] })
    const text = reply.final!.body.toString("utf8")
    const labels = new Set([...text.matchAll(/provider="([^"]*)"/g)].map((m) => m[1]!))
    const allowed = new Set([...known, "control", "unknown"])
    expect([...labels].filter((l) => !allowed.has(l)), "provider labels outside the bounded set (item 2)").toEqual([])
    expect(labels.size).toBeLessThanOrEqual(known.length + 2)
    expect(text.length, "size of /metrics").toBeLessThan(256 * 1024)
  })

  it("no line the gateway wrote holds a secret (deliveries included)", async () => {
    await new Promise((r) => setTimeout(r, 500))
    expect(world.logs.length).toBeGreaterThan(100)
    expect(world.logs.some((l) => l.includes("\"message\":\"webhook\""))).toBe(true)
    expect(leakedSecrets(world.logs, world.secrets), "secrets in log lines (item 1)").toEqual([])
  })
})
