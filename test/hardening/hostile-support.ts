// The world of the hostile-input suite: a real gateway (in process, every log line captured) on a consistent
// directory with an integration of every built-in provider, reachable region stubs that answer 200, a control
// upstream with a base path, the secrets of all of them, raw-socket requests, and the secret scan of the logs.
import { JiraCloud, jiraServerToken } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { Effect } from "effect"
import * as Jose from "jose"
import { createHmac, randomBytes } from "node:crypto"
import * as Net from "node:net"
import type { Stub } from "../support/Http.js"
import { readFixture, startStub } from "../support/Http.js"

const random = (label: string) => `${label}-${randomBytes(12).toString("hex")}`

/** `whsec_` + base64 of 32 random bytes (docs/interfaces.md: at least 24 bytes). */
const regionSecret = () => "whsec_" + randomBytes(32).toString("base64")

export const JIRA_SERVER_EXTERNAL = "jira.hostile.test:cellgate"
export const JIRA_SERVER_SECRET = random("jira-server-secret")
export const JIRA_CLOUD_CLIENT_KEY = "hostile-client-key"
export const JIRA_CLOUD_SECRET = random("jira-cloud-shared-secret")
export const GITHUB_SECRET = random("github-app-secret")
export const GITHUB_INSTALLATION = 777001
export const GITLAB_EXTERNAL = "gitlab.hostile.test:group-h"
export const GITLAB_SECRET = random("gitlab-secret")
export const GITLAB_TOKEN = `${GITLAB_EXTERNAL}:${GITLAB_SECRET}`
export const VSTS_SECRET = random("vsts-shared-secret")
export const VSTS_BODY = readFixture("vsts", "workitem_updated.json")
export const VSTS_COLLECTION: string = JSON.parse(VSTS_BODY.toString("utf8")).resourceContainers.collection.id
export const TEAMS_BODY = readFixture("msteams", "message_mention.json")
export const TEAMS_TEAM: string = JSON.parse(TEAMS_BODY.toString("utf8")).channelData.team.id
export const GITLAB_BODY = readFixture("gitlab", "push.json")
export const JIRA_SERVER_BODY = readFixture("jira-server", "sentry_issue_updated_status_minimal.json")
export const JIRA_CLOUD_BODY = readFixture("jira-cloud", "sentry_edit_issue_status.json")
export const BITBUCKET_BODY = readFixture("bitbucket", "repo_push.json")
export const GITHUB_BODY = Buffer.from(
  JSON.stringify({ action: "opened", installation: { id: GITHUB_INSTALLATION }, repository: { id: 4242 } })
)
export const REGION_SECRETS = { us: regionSecret(), eu: regionSecret(), de: regionSecret() } as const

/** Every provider name the gateway knows or may know (docs/routing.md#other-providers, §8): the bounded label set. */
export const KNOWN_PROVIDERS = [
  "jira_server",
  "github",
  "github_enterprise",
  "gitlab",
  "jira",
  "bitbucket",
  "bitbucket_server",
  "vsts",
  "msteams",
  "slack",
  "discord",
  "vercel",
  "google"
] as const

export const githubSignature = (body: Buffer) =>
  "sha256=" + createHmac("sha256", GITHUB_SECRET).update(body).digest("hex")

/** A Connect JWT for `method pathWithQuery` (qsh the Atlassian way), valid for an hour. */
export const jiraCloudJwt = async (
  method: string,
  pathWithQuery: string,
  secret = JIRA_CLOUD_SECRET,
  iss = JIRA_CLOUD_CLIENT_KEY
) => {
  const qsh = await Effect.runPromise(JiraCloud.queryStringHash(method, pathWithQuery))
  const now = Math.floor(Date.now() / 1000)
  return new Jose.SignJWT({ iss, iat: now - 10, exp: now + 3600, qsh })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret))
}

export interface Tokens {
  /** The valid Jira Server token of the directory's integration. */
  readonly jiraServer: string
  /** A valid Jira Cloud JWT (for `POST /extensions/jira/issue-updated/`). */
  readonly jiraCloud: string
  /** A real HS256 JWT signed with another key (looks like a token, verifies nowhere). */
  readonly stranger: string
}

export const mintTokens = async (): Promise<Tokens> => ({
  jiraServer: await jiraServerToken(JIRA_SERVER_EXTERNAL, JIRA_SERVER_SECRET),
  jiraCloud: await jiraCloudJwt("POST", "/extensions/jira/issue-updated/"),
  stranger: await new Jose.SignJWT({ id: JIRA_SERVER_EXTERNAL, sub: "stranger" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(random("stranger-key")))
})

/** Every secret that must never appear in a log line, by name (the name is what a failure prints). */
export const secretsOf = (tokens: Tokens): ReadonlyArray<readonly [string, string]> => {
  const jwtParts = (name: string, jwt: string): Array<readonly [string, string]> => [
    [name, jwt],
    [`${name} (signature part)`, jwt.split(".")[2]!]
  ]
  return [
    ...jwtParts("Jira Server token", tokens.jiraServer),
    ...jwtParts("Jira Cloud JWT", tokens.jiraCloud),
    ...jwtParts("stranger JWT", tokens.stranger),
    ["Jira Server webhookSecret", JIRA_SERVER_SECRET],
    ["Jira Cloud sharedSecret", JIRA_CLOUD_SECRET],
    ["GitHub app secret", GITHUB_SECRET],
    ["GitHub signature", githubSignature(GITHUB_BODY).slice("sha256=".length)],
    ["GitLab secret", GITLAB_SECRET],
    ["VSTS shared secret", VSTS_SECRET],
    ...Object.entries(REGION_SECRETS).flatMap(([name, s]): Array<readonly [string, string]> => [
      [`region ${name} secret`, s],
      [`region ${name} secret (key part)`, s.slice("whsec_".length)]
    ])
  ]
}

const decodeLeniently = (line: string) =>
  line.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) => {
    try {
      return decodeURIComponent(m)
    } catch {
      return m
    }
  })

/** The names of the secrets found in `lines` (verbatim, or once percent-decoded). */
export const leakedSecrets = (
  lines: ReadonlyArray<string>,
  secrets: ReadonlyArray<readonly [string, string]>
): Array<string> => {
  const found = new Set<string>()
  for (const line of lines) {
    const decoded = decodeLeniently(line)
    for (const [name, value] of secrets) {
      if (line.includes(value) || decoded.includes(value)) found.add(name)
    }
  }
  return [...found]
}

// the world ---------------------------------------------------------------------------------------------------

export const CONTROL_BASE = "/base"
export const HOSTILE_ID = "x-hostile-id"
export const MAX_BODY_BYTES = 256 * 1024

export interface World {
  readonly gateway: EmbeddedServer
  readonly port: number
  readonly regions: { readonly us: Stub; readonly eu: Stub; readonly de: Stub }
  readonly control: Stub
  /** Every line the gateway wrote: its log sink, plus anything written to the console or stdout/stderr. */
  readonly logs: Array<string>
  readonly tokens: Tokens
  readonly secrets: ReadonlyArray<readonly [string, string]>
  readonly close: () => Promise<void>
}

/** Tees console.* and process.stdout/stderr writes into `into`; returns the restore function. */
const captureStdio = (into: Array<string>) => {
  const methods = ["log", "info", "warn", "error", "debug"] as const
  const saved = methods.map((m) => [m, console[m]] as const)
  for (const m of methods) {
    const original = console[m]
    console[m] = (...args: Array<unknown>) => {
      into.push(args.map((a) => (typeof a === "string" ? a : String(a))).join(" "))
      original.apply(console, args)
    }
  }
  const out = process.stdout.write.bind(process.stdout)
  const err = process.stderr.write.bind(process.stderr)
  const tee = (write: typeof out) =>
    ((chunk: unknown, ...rest: Array<any>) => {
      into.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"))
      return write(chunk as string, ...rest)
    }) as typeof out
  process.stdout.write = tee(out)
  process.stderr.write = tee(err)
  return () => {
    for (const [m, f] of saved) console[m] = f
    process.stdout.write = out
    process.stderr.write = err
  }
}

export const startWorld = async (): Promise<World> => {
  const logs: Array<string> = []
  const restore = captureStdio(logs)
  const regionAnswer = () => ({
    status: 200,
    // two Set-Cookie headers: a relayed answer must keep them apart (issue #10 item 10)
    headers: { "content-type": "text/plain", "set-cookie": ["a=1; Path=/", "b=2; Path=/"] } as unknown as Record<
      string,
      string
    >,
    body: "region ok"
  })
  const regions = {
    us: await startStub(regionAnswer),
    eu: await startStub(regionAnswer),
    de: await startStub(regionAnswer)
  }
  const control = await startStub(() => ({
    status: 200,
    headers: { "content-type": "text/plain" },
    body: "control ok"
  }))
  const tokens = await mintTokens()
  const gateway = await makeServer({
    server: { port: 0, maxBodyBytes: MAX_BODY_BYTES, readTimeoutMs: 5_000 },
    store: { kind: "memory", ephemeral: true },
    delivery: { pollIntervalMs: 50 },
    control: { upstream: `${control.url}${CONTROL_BASE}` },
    providers: { github: { webhookSecret: GITHUB_SECRET }, github_enterprise: { webhookSecret: GITHUB_SECRET } },
    directory: {
      regions: [
        { name: "us", url: regions.us.url, secret: REGION_SECRETS.us },
        { name: "eu", url: regions.eu.url, secret: REGION_SECRETS.eu },
        { name: "de", url: regions.de.url, secret: REGION_SECRETS.de }
      ],
      organizations: [
        { id: 1, slug: "acme-us", region: "us" },
        { id: 2, slug: "acme-eu", region: "eu" },
        { id: 3, slug: "acme-de", region: "de" }
      ],
      integrations: [
        {
          id: 10,
          provider: "jira_server",
          externalId: JIRA_SERVER_EXTERNAL,
          metadata: { webhookSecret: JIRA_SERVER_SECRET }
        },
        { id: 20, provider: "github", externalId: String(GITHUB_INSTALLATION) },
        { id: 30, provider: "gitlab", externalId: GITLAB_EXTERNAL, metadata: { webhookSecret: GITLAB_SECRET } },
        {
          id: 40,
          provider: "jira",
          externalId: JIRA_CLOUD_CLIENT_KEY,
          metadata: { sharedSecret: JIRA_CLOUD_SECRET }
        },
        { id: 50, provider: "vsts", externalId: VSTS_COLLECTION, metadata: { webhookSecret: VSTS_SECRET } },
        { id: 60, provider: "msteams", externalId: TEAMS_TEAM },
        { id: 70, provider: "bitbucket", externalId: "bitbucket-hostile" },
        { id: 80, provider: "bitbucket_server", externalId: "bitbucket-server-hostile" }
      ],
      organizationIntegrations: [
        { organizationId: 1, integrationId: 10 },
        { organizationId: 2, integrationId: 10 },
        { organizationId: 1, integrationId: 20 },
        { organizationId: 3, integrationId: 20 },
        { organizationId: 2, integrationId: 30 },
        { organizationId: 1, integrationId: 40 },
        { organizationId: 2, integrationId: 40 },
        { organizationId: 3, integrationId: 50 },
        { organizationId: 1, integrationId: 60 },
        { organizationId: 1, integrationId: 70 },
        { organizationId: 2, integrationId: 80 }
      ]
    }
  }, { port: 0, log: (line) => logs.push(line) })
  return {
    gateway,
    port: gateway.port,
    regions,
    control,
    logs,
    tokens,
    secrets: secretsOf(tokens),
    close: async () => {
      await gateway.close()
      await Promise.all([regions.us.close(), regions.eu.close(), regions.de.close(), control.close()])
      restore()
    }
  }
}

// valid requests of every provider ----------------------------------------------------------------------------

export interface RawRequest {
  readonly method: string
  readonly target: string
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body?: Buffer | undefined
}

export const VALID_KINDS = [
  "jira_server",
  "github",
  "gitlab",
  "jira_cloud",
  "jira_cloud_issue",
  "bitbucket",
  "bitbucket_server",
  "vsts",
  "msteams",
  "control"
] as const
export type ValidKind = typeof VALID_KINDS[number]

/** A request that passes every check of its provider (with `body` instead of the provider's own, when given). */
export const validRequest = async (kind: ValidKind, tokens: Tokens, body?: Buffer): Promise<RawRequest> => {
  const json: ReadonlyArray<readonly [string, string]> = [["content-type", "application/json"]]
  switch (kind) {
    case "jira_server":
      return {
        method: "POST",
        target: `/extensions/jira-server/issue-updated/${tokens.jiraServer}/`,
        headers: json,
        body: body ?? JIRA_SERVER_BODY
      }
    case "github": {
      const b = body ?? GITHUB_BODY
      return {
        method: "POST",
        target: "/extensions/github/webhook/",
        headers: [...json, ["x-github-event", "issues"], ["x-hub-signature-256", githubSignature(b)]],
        body: b
      }
    }
    case "gitlab":
      return {
        method: "POST",
        target: "/extensions/gitlab/webhook/",
        headers: [...json, ["x-gitlab-token", GITLAB_TOKEN], ["x-gitlab-event", "Push Hook"]],
        body: body ?? GITLAB_BODY
      }
    case "jira_cloud":
      return {
        method: "POST",
        target: "/extensions/jira/issue-updated/",
        headers: [...json, ["authorization", `JWT ${tokens.jiraCloud}`]],
        body: body ?? JIRA_CLOUD_BODY
      }
    case "jira_cloud_issue": {
      const target = "/extensions/jira/issue/APP-123/"
      return {
        method: "GET",
        target,
        headers: [["authorization", `JWT ${await jiraCloudJwt("GET", target)}`]],
        body
      }
    }
    case "bitbucket":
      return {
        method: "POST",
        target: "/extensions/bitbucket/organizations/1/webhook/",
        headers: [...json, ["x-event-key", "repo:push"]],
        body: body ?? BITBUCKET_BODY
      }
    case "bitbucket_server":
      return {
        method: "POST",
        target: "/extensions/bitbucket-server/organizations/2/webhook/80/",
        headers: [...json, ["x-event-key", "repo:refs_changed"]],
        body: body ?? BITBUCKET_BODY
      }
    case "vsts":
      return {
        method: "POST",
        target: "/extensions/vsts/issue-updated/",
        headers: [...json, ["shared-secret", VSTS_SECRET]],
        body: body ?? VSTS_BODY
      }
    case "msteams":
      return { method: "POST", target: "/extensions/msteams/webhook/", headers: json, body: body ?? TEAMS_BODY }
    case "control":
      return { method: "POST", target: "/api/0/organizations/", headers: json, body: body ?? Buffer.from("{}") }
  }
}

// raw HTTP/1.1 over a socket ----------------------------------------------------------------------------------

export interface RawReply {
  /** Every status line received, in order (1xx included). */
  readonly statuses: ReadonlyArray<number>
  /** The final (non-1xx) answer, if one arrived. */
  readonly final?: {
    readonly status: number
    readonly headers: ReadonlyArray<readonly [string, string]>
    readonly body: Buffer
  }
  /** The connection was reset (or failed) before the final answer was complete. */
  readonly reset?: string
  readonly timedOut: boolean
}

const parseReply = (data: Buffer, method: string): Omit<RawReply, "reset" | "timedOut"> => {
  const statuses: Array<number> = []
  let offset = 0
  for (;;) {
    const end = data.indexOf("\r\n\r\n", offset)
    if (end === -1) return { statuses }
    const head = data.subarray(offset, end).toString("latin1")
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head)
    if (m === null) return { statuses }
    const status = Number(m[1])
    statuses.push(status)
    offset = end + 4
    if (status >= 100 && status < 200) continue
    const headers = head.split("\r\n").slice(1).map((l): readonly [string, string] => {
      const colon = l.indexOf(":")
      return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()]
    })
    return { statuses, final: { status, headers, body: method === "HEAD" ? Buffer.alloc(0) : data.subarray(offset) } }
  }
}

const head = (request: RawRequest, bodyLength: number | undefined): Buffer => {
  const names = new Set(request.headers.map(([k]) => k.toLowerCase()))
  const lines = [`${request.method} ${request.target} HTTP/1.1`]
  if (!names.has("host")) lines.push("host: 127.0.0.1")
  for (const [k, v] of request.headers) lines.push(`${k}: ${v}`)
  if (!names.has("connection")) lines.push("connection: close")
  if (bodyLength !== undefined && !names.has("content-length") && !names.has("transfer-encoding")) {
    lines.push(`content-length: ${bodyLength}`)
  }
  return Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1")
}

/**
 * Sends one request on a fresh connection (`connection: close` unless the request names one) and reads until the
 * server closes it. With `continueFirst`, the head goes first and the body only after the first answer (or 500 ms).
 */
export const raw = (
  port: number,
  request: RawRequest,
  options: { readonly timeoutMs?: number; readonly continueFirst?: boolean } = {}
): Promise<RawReply> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    let settled = false
    const socket = Net.connect(port, "127.0.0.1")
    const finish = (reset?: string, timedOut = false) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      const parsed = parseReply(Buffer.concat(chunks), request.method)
      resolve({ ...parsed, ...(reset !== undefined && parsed.final === undefined ? { reset } : {}), timedOut })
    }
    const timer = setTimeout(() => finish(undefined, true), options.timeoutMs ?? 10_000)
    let bodySent = false
    const sendBody = () => {
      if (bodySent || socket.destroyed) return
      bodySent = true
      if (request.body !== undefined && request.body.length > 0) socket.write(request.body)
    }
    socket.on("connect", () => {
      socket.write(head(request, request.body?.length))
      if (options.continueFirst === true) setTimeout(sendBody, 500)
      else sendBody()
    })
    socket.on("data", (c: Buffer) => {
      chunks.push(c)
      if (options.continueFirst === true) sendBody()
    })
    socket.on("error", (e: NodeJS.ErrnoException) => finish(e.code ?? e.message))
    socket.on("end", () => finish())
    socket.on("close", () => finish())
  })

/** Why a reply breaks "no 5xx, no reset, an answer" (undefined: it does not). */
export const unsafe = (reply: RawReply): string | undefined => {
  if (reply.reset !== undefined) return `connection failed before an answer: ${reply.reset}`
  if (reply.timedOut && reply.final === undefined) return "no answer in time"
  if (reply.final === undefined) return `closed without an answer (statuses ${reply.statuses.join(",")})`
  if (reply.final.status >= 500) {
    return `answered ${reply.final.status}: ${reply.final.body.subarray(0, 300).toString("utf8")}`
  }
  return undefined
}

export const headerValues = (reply: RawReply, name: string): Array<string> =>
  (reply.final?.headers ?? []).filter(([k]) => k === name).map(([, v]) => v)
