// docs/routing.md#slack (and the decisions of §8.3): Slack's v0 signatures (the published worked example, and requests
// signed at test time), the 5-minute window on the Effect clock, url_verification at the edge, the team id, team
// narrowing, the Hybrid decision and its reply target (replyHosts). The hybrid's interpretation is tested elsewhere.
import { Memory } from "@cellgate/adapters"
import type { Hybrid, RouteOutcome, WebhookRequest } from "@cellgate/core"
import { Interactive, Metrics, Outbox, Provider, Providers, Slack } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { Cli, Config, makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Metric, Option, Redacted, TestClock } from "effect"
import { createHmac } from "node:crypto"
import { withGateway } from "../support/Gateway.js"
import type { Stub } from "../support/Http.js"
import { call, closedPort, startStub } from "../support/Http.js"
import {
  assertAccepted,
  assertControl,
  assertError,
  bytes,
  directory,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  text
} from "./support.js"

const vector = JSON.parse(fixture("slack", "slash_command_docs_vector.headers.json"))
const vectorBody = fixture("slack", "slash_command_docs_vector.body.txt")
const SECRET = "slack-signing-secret"
const NOW = 1_700_000_000_000

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 200, provider: "slack", externalId: "T111" },
    { id: 201, provider: "slack", externalId: "T1DC2JH3J" },
    { id: 202, provider: "slack", externalId: "TNOORG" },
    { id: 203, provider: "slack", externalId: "TOFF", status: "disabled" as const },
    { id: 204, provider: "slack", externalId: "TMARS" },
    { id: 205, provider: "github", externalId: "TGH" }
  ],
  organizationIntegrations: [
    { organizationId: 4, integrationId: 200 },
    { organizationId: 2, integrationId: 200 },
    { organizationId: 1, integrationId: 200 },
    { organizationId: 3, integrationId: 200 },
    { organizationId: 2, integrationId: 201 },
    { organizationId: 1, integrationId: 202, status: "disabled" as const },
    { organizationId: 1, integrationId: 203 },
    { organizationId: 5, integrationId: 204 },
    { organizationId: 1, integrationId: 205 }
  ]
}

const layer = (slack: Provider.SlackOptions = { signingSecret: Redacted.make(SECRET) }) =>
  withGateway(Layer.mergeAll(
    Memory.layer(directory(directoryJson)),
    Providers.layer(),
    Layer.succeed(Provider.ProviderSecrets, { webhookSecret: () => Option.none(), slack })
  ))

const FORM = "application/x-www-form-urlencoded"

/** A request signed now (the test clock) with `SECRET`, or as `options` say. */
const signed = (
  path: string,
  body: string | Uint8Array,
  options: { secret?: string; offsetSeconds?: number; headers?: Record<string, string>; form?: boolean } = {}
) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOW)
    const ts = String(NOW / 1000 + (options.offsetSeconds ?? 0))
    const sig = yield* Slack.signature(options.secret ?? SECRET, ts, bytes(body))
    return request(path, {
      body,
      headers: {
        "content-type": options.form === false ? "application/json" : FORM,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
        ...options.headers
      }
    })
  })

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const command = (fields: Record<string, string> = {}) =>
  form({
    team_id: "T111",
    command: "/sentry",
    text: "",
    response_url: "https://hooks.slack.com/commands/T111/1/secret",
    ...fields
  })
const payload = (value: unknown) => form({ payload: JSON.stringify(value) })

const COMMANDS = "/extensions/slack/commands/"
const ACTION = "/extensions/slack/action/"
const OPTIONS = "/extensions/slack/options-load/"
const EVENT = "/extensions/slack/event/"

const hybridOf = (outcome: RouteOutcome): Hybrid => {
  assert.strictEqual(outcome.decision._tag, "Hybrid", outcome.reason)
  return outcome.decision as Hybrid
}

const routeSigned = (path: string, body: string, options: Parameters<typeof signed>[2] = {}) =>
  Effect.flatMap(signed(path, body, options), route)
const handleSigned = (path: string, body: string, options: Parameters<typeof signed>[2] = {}) =>
  Effect.flatMap(signed(path, body, options), handle)

const counter = (metric: Metric.Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((s) => s.count))

describe("Slack signature (v0)", () => {
  it.effect("matches Slack's published worked example", () =>
    Effect.gen(function*() {
      const sig = yield* Slack.signature(vector._signing_secret, vector["X-Slack-Request-Timestamp"], bytes(vectorBody))
      assert.strictEqual(sig, vector["X-Slack-Signature"])
    }))

  it.effect("the published example routes when the clock is at its timestamp (and is refused 5 minutes later)", () =>
    Effect.gen(function*() {
      const req = request(COMMANDS, {
        body: vectorBody,
        headers: {
          "content-type": FORM,
          "x-slack-request-timestamp": vector["X-Slack-Request-Timestamp"],
          "x-slack-signature": vector["X-Slack-Signature"]
        }
      })
      const ts = Number(vector["X-Slack-Request-Timestamp"]) * 1000
      yield* TestClock.setTime(ts)
      const h = hybridOf(yield* route(req))
      assert.deepStrictEqual<unknown>(h.regions, ["eu"])
      assert.strictEqual(h.integrationId, 201)
      assert.deepStrictEqual(h.replyTarget, {
        kind: "slack",
        url: "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"
      })
      yield* TestClock.setTime(ts + 301_000)
      assertError(yield* handle(req), 401, "invalid_signature")
    }).pipe(Effect.provide(layer({ signingSecret: Redacted.make(vector._signing_secret) }))))

  it.effect("is node:crypto's HMAC of v0:<ts>:<exact bytes>", () =>
    Effect.gen(function*() {
      const body = new Uint8Array([0xff, 0x00, 0x3d, 0x26, 0xc3, 0xa9])
      const expected = createHmac("sha256", SECRET).update(Buffer.concat([Buffer.from("v0:123:"), body])).digest("hex")
      assert.strictEqual(yield* Slack.signature(SECRET, "123", body), `v0=${expected}`)
    }))

  it.effect.prop(
    "any body signed now verifies; the same body with one byte changed does not",
    [fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.integer({ min: 1, max: 255 })],
    ([body, at, delta]) =>
      Effect.gen(function*() {
        const req = yield* signed(COMMANDS, body)
        assert.strictEqual(yield* Slack.verify(Redacted.make(SECRET), req, NOW), undefined)
        const altered = new Uint8Array(body)
        const i = at % body.length
        altered[i] = (altered[i]! + delta) % 256
        const reason = yield* Slack.verify(Redacted.make(SECRET), { ...req, body: altered }, NOW)
        assert.strictEqual(reason, "X-Slack-Signature does not match the body")
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "the timestamp is accepted exactly when it is within 300 s of the clock, either side",
    [fc.integer({ min: -1000, max: 1000 })],
    ([offset]) =>
      Effect.gen(function*() {
        const req = yield* signed(COMMANDS, command(), { offsetSeconds: offset })
        const reason = yield* Slack.verify(Redacted.make(SECRET), req, NOW)
        if (Math.abs(offset) <= 300) assert.strictEqual(reason, undefined)
        else assert.strictEqual(reason, "X-Slack-Request-Timestamp is more than 5 minutes from now")
      }),
    { fastCheck: { numRuns: 100 } }
  )
})

describe("Slack verification at the edge: 401 invalid_signature, nothing routed", () => {
  const cases: ReadonlyArray<readonly [string, (req: WebhookRequest) => WebhookRequest]> = [
    ["missing signature", (r) => ({ ...r, headers: { ...r.headers, "x-slack-signature": undefined! } })],
    ["missing timestamp", (r) => ({ ...r, headers: { ...r.headers, "x-slack-request-timestamp": undefined! } })],
    ["timestamp not a number", (r) => ({ ...r, headers: { ...r.headers, "x-slack-request-timestamp": "12a" } })],
    ["timestamp changed (the signature covers it)", (r) => ({
      ...r,
      headers: { ...r.headers, "x-slack-request-timestamp": String(NOW / 1000 + 1) }
    })],
    ["signature of another body", (r) => ({ ...r, body: bytes(command({ team_id: "T1DC2JH3J" })) })],
    [
      "not v0",
      (r) => ({
        ...r,
        headers: { ...r.headers, "x-slack-signature": r.headers["x-slack-signature"]!.replace("v0=", "v1=") }
      })
    ]
  ]
  for (const [name, tamper] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const req = tamper(yield* signed(COMMANDS, command()))
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([, v]) => v !== undefined))
        const response = yield* handle({ ...req, headers })
        assertError(response, 401, "invalid_signature", Slack.INVALID_SIGNATURE)
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(layer())))
  }

  it.effect("signed with another secret", () =>
    Effect.gen(function*() {
      assertError(yield* handleSigned(COMMANDS, command(), { secret: "other" }), 401, "invalid_signature")
      // the log line and explain say why
      const outcome = yield* routeSigned(COMMANDS, command(), { secret: "other" })
      assert.strictEqual(outcome.reason, "X-Slack-Signature does not match the body")
    }).pipe(Effect.provide(layer())))

  it.effect("stale (301 s old) and from the future (301 s ahead): 401; 299 s either side routes", () =>
    Effect.gen(function*() {
      for (const offsetSeconds of [-301, 301]) {
        assertError(yield* handleSigned(COMMANDS, command(), { offsetSeconds }), 401, "invalid_signature")
      }
      for (const offsetSeconds of [-299, 299]) {
        assert.strictEqual((yield* routeSigned(COMMANDS, command(), { offsetSeconds })).decision._tag, "Hybrid")
      }
    }).pipe(Effect.provide(layer())))

  it.effect("no signing secret configured: every Slack webhook path answers 401, url_verification included", () =>
    Effect.gen(function*() {
      const challenge = fixture("slack", "url_verification.json")
      for (
        const [path, body] of [[COMMANDS, command()], [ACTION, payload({ team: { id: "T111" } })], [
          OPTIONS,
          payload({ team: { id: "T111" } })
        ], [EVENT, challenge]] as const
      ) {
        const outcome = yield* routeSigned(path, body)
        assert.strictEqual(outcome.reason, "no signing secret configured (providers.slack.signingSecret)")
        assertError(yield* handleSigned(path, body), 401, "invalid_signature")
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer({}))))

  it.effect("other paths under the prefix are Control, signed or not", () =>
    Effect.gen(function*() {
      for (const p of ["link-identity/abc/", "unlink-identity/abc/", "commands", "commands//", "event/x/", ""]) {
        assertControl(yield* handle(request(`/extensions/slack/${p}`, { body: command() })))
      }
    }).pipe(Effect.provide(layer())))
})

describe("Slack event/ url_verification", () => {
  it.effect("is answered at the edge with the challenge (JSON), no region, nothing stored", () =>
    Effect.gen(function*() {
      const body = fixture("slack", "url_verification.json")
      const response = yield* handleSigned(EVENT, body, { form: false })
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["content-type"], "application/json")
      assert.deepStrictEqual(JSON.parse(text(response.body)), { challenge: JSON.parse(body).challenge })
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("without a string challenge: 400", () =>
    Effect.gen(function*() {
      assertError(yield* handleSigned(EVENT, JSON.stringify({ type: "url_verification" })), 400, "bad_request")
    }).pipe(Effect.provide(layer())))
})

describe("Slack identity: the team id", () => {
  it.effect("team_id of a command, team.id of an action payload, user.team_id, authorizations[0].team_id", () =>
    Effect.gen(function*() {
      const block = fixture("slack", "interactive_block_actions.form.txt")
      assert.strictEqual(hybridOf(yield* routeSigned(ACTION, block)).integrationId, 200)
      const enterprise = fixture("slack", "slash_command_enterprise.form.txt")
      assert.strictEqual(hybridOf(yield* routeSigned(COMMANDS, enterprise)).integrationId, 200)
      const mention = fixture("slack", "event_callback_app_mention.json")
      assert.strictEqual(hybridOf(yield* routeSigned(EVENT, mention, { form: false })).integrationId, 200)
      const userOnly = payload({ type: "block_suggestion", user: { id: "W1", team_id: "T1DC2JH3J" } })
      assert.strictEqual(hybridOf(yield* routeSigned(OPTIONS, userOnly)).integrationId, 201)
      const orgWide = JSON.stringify({ type: "event_callback", event_id: "Ev9", authorizations: [{ team_id: "T111" }] })
      assert.strictEqual(hybridOf(yield* routeSigned(EVENT, orgWide, { form: false })).integrationId, 200)
      // team_id comes first
      const both = payload({ team_id: "T1DC2JH3J", team: { id: "T111" } })
      assert.strictEqual(hybridOf(yield* routeSigned(ACTION, both)).integrationId, 201)
    }).pipe(Effect.provide(layer())))

  it.effect("no team id anywhere (an org-level event; a null authorization): 400 missing_identity", () =>
    Effect.gen(function*() {
      for (const name of ["event_callback_org_team_access_granted.json"]) {
        assertError(yield* handleSigned(EVENT, fixture("slack", name), { form: false }), 400, "missing_identity")
      }
      const nullTeam = JSON.stringify({ type: "event_callback", authorizations: [{ team_id: null }] })
      assertError(yield* handleSigned(EVENT, nullTeam, { form: false }), 400, "missing_identity")
      assertError(yield* handleSigned(EVENT, "not json", { form: false }), 400, "missing_identity")
      assertError(yield* handleSigned(ACTION, "payload=%7Bbroken"), 400, "missing_identity")
      assertError(yield* handleSigned(COMMANDS, command({ team_id: "" })), 400, "missing_identity")
    }).pipe(Effect.provide(layer())))

  it.effect("an unknown team, a disabled integration, or another provider's id: 400 integration_not_found", () =>
    Effect.gen(function*() {
      for (const team of ["TNOPE", "TOFF", "TGH"]) {
        assertError(yield* handleSigned(COMMANDS, command({ team_id: team })), 400, "integration_not_found")
      }
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("no active organization: 202, empty body, nothing stored, counted as dropped no_organization", () =>
    Effect.gen(function*() {
      const dropped = Metrics.droppedTotal("slack", "no_organization")
      const before = yield* counter(dropped)
      assertAccepted(yield* handleSigned(COMMANDS, command({ team_id: "TNOORG" })))
      assert.strictEqual((yield* counter(dropped)) - before, 1)
      assert.deepStrictEqual(yield* stored, [])
    }).pipe(Effect.provide(layer())))

  it.effect("a linked organization in a region the directory does not know: 500 region_not_found", () =>
    Effect.gen(function*() {
      assertError(yield* handleSigned(COMMANDS, command({ team_id: "TMARS" })), 500, "region_not_found")
    }).pipe(Effect.provide(layer())))
})

describe("Slack decisions (Hybrid)", () => {
  it.effect("commands/: first region, budget, empty 200 fallback, stored with the response_url as reply target", () =>
    Effect.gen(function*() {
      const outcome = yield* routeSigned(COMMANDS, command())
      const h = hybridOf(outcome)
      assert.deepStrictEqual<unknown>(h.regions, ["de", "eu", "us"])
      assert.deepStrictEqual<unknown>(outcome.organizations, [1, 2, 3, 4])
      assert.strictEqual(h.mode, "first")
      assert.strictEqual(h.budgetMs, 2000)
      assert.strictEqual(h.provider, "slack")
      assert.strictEqual(h.mailboxPrefix, "slack")
      assert.strictEqual(h.integrationId, 200)
      assert.deepStrictEqual(h.fallback, { status: 200, headers: {}, body: "" })
      assert.strictEqual(h.store, true)
      assert.deepStrictEqual(h.replyTarget, { kind: "slack", url: "https://hooks.slack.com/commands/T111/1/secret" })
      assert.strictEqual(h.dedupe, null)
    }).pipe(Effect.provide(layer())))

  it.effect("action/: all regions, the payload's response_url as reply target", () =>
    Effect.gen(function*() {
      const h = hybridOf(yield* routeSigned(ACTION, fixture("slack", "interactive_block_actions.form.txt")))
      assert.strictEqual(h.mode, "all")
      assert.deepStrictEqual<unknown>(h.regions, ["de", "eu", "us"])
      assert.deepStrictEqual(h.replyTarget, {
        kind: "slack",
        url: "https://hooks.slack.com/actions/T111/111/random-value"
      })
      assert.strictEqual(h.store, true)
      // an action that did not come from a message has no response_url: stored without a reply target
      const modal = hybridOf(yield* routeSigned(ACTION, payload({ type: "view_submission", team: { id: "T111" } })))
      assert.strictEqual(modal.replyTarget, null)
    }).pipe(Effect.provide(layer())))

  it.effect("options-load/: first region, fallback {\"options\":[]}, never stored, no reply target", () =>
    Effect.gen(function*() {
      const body = payload({
        type: "block_suggestion",
        team: { id: "T111" },
        response_url: "https://hooks.slack.com/x"
      })
      const h = hybridOf(yield* routeSigned(OPTIONS, body))
      assert.strictEqual(h.mode, "first")
      assert.strictEqual(h.store, false)
      assert.strictEqual(h.replyTarget, null)
      assert.deepStrictEqual(h.fallback, {
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{\"options\":[]}"
      })
    }).pipe(Effect.provide(layer())))

  it.effect("event/: first region, stored without a reply target, deduplicated by event_id for 10 minutes", () =>
    Effect.gen(function*() {
      const h = hybridOf(
        yield* routeSigned(EVENT, fixture("slack", "event_callback_app_mention.json"), { form: false })
      )
      assert.strictEqual(h.mode, "first")
      assert.strictEqual(h.store, true)
      assert.strictEqual(h.replyTarget, null)
      assert.deepStrictEqual(h.dedupe, { key: "slack:Ev111", ttlMs: 600_000, retry: false })
      // a retry (X-Slack-Retry-Num) carries the flag: only a retry of an accepted event is dropped
      const retried = hybridOf(
        yield* routeSigned(EVENT, fixture("slack", "event_callback_app_mention.json"), {
          form: false,
          headers: { "x-slack-retry-num": "1" }
        })
      )
      assert.deepStrictEqual(retried.dedupe, { key: "slack:Ev111", ttlMs: 600_000, retry: true })
      // a response_url in an event body is not a reply target
      const odd = JSON.stringify({ team_id: "T111", type: "event_callback", response_url: "https://hooks.slack.com/x" })
      const o = hybridOf(yield* routeSigned(EVENT, odd, { form: false }))
      assert.strictEqual(o.replyTarget, null)
      assert.strictEqual(o.dedupe, null)
    }).pipe(Effect.provide(layer())))

  it.effect("syncBudgetMs comes from providers.slack", () =>
    Effect.gen(function*() {
      assert.strictEqual(hybridOf(yield* routeSigned(COMMANDS, command())).budgetMs, 1500)
    }).pipe(Effect.provide(layer({ signingSecret: Redacted.make(SECRET), syncBudgetMs: 1500 }))))
})

describe("Slack team narrowing (link team / unlink team)", () => {
  const regionsFor = (text: string, path = COMMANDS) =>
    Effect.map(
      routeSigned(path, path === COMMANDS ? command({ text }) : payload({ team: { id: "T111" }, text })),
      (o) => [hybridOf(o).regions, o.organizations] as const
    )

  it.effect("link team <slug> / unlink team <slug> of one of the integration's organizations: only its region", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual<unknown>(yield* regionsFor("link team acme-eu"), [["eu"], [2]])
      assert.deepStrictEqual<unknown>(yield* regionsFor("unlink team acme-de"), [["de"], [4]])
      assert.deepStrictEqual<unknown>(yield* regionsFor("  Link   TEAM acme-us-2 "), [["us"], [3]])
    }).pipe(Effect.provide(layer())))

  it.effect("any other text, a slug that is not one of its organizations, or not a command: every region", () =>
    Effect.gen(function*() {
      const all = [["de", "eu", "us"], [1, 2, 3, 4]]
      for (
        const t of ["", "link team", "link team acme-eu extra", "link acme-eu", "link teams acme-eu", "link team lost"]
      ) {
        assert.deepStrictEqual<unknown>(yield* regionsFor(t), all, t)
      }
      // another workspace's organization slug
      assert.deepStrictEqual<unknown>(yield* regionsFor("link team nobody"), all)
      const action = yield* regionsFor("link team acme-eu", ACTION)
      assert.deepStrictEqual<unknown>(action[0], ["de", "eu", "us"])
    }).pipe(Effect.provide(layer())))
})

describe("Slack reply targets: only to providers.slack.replyHosts", () => {
  it.effect("a response_url on another host: no reply target, counted refused_host, logged with the host only", () =>
    Effect.gen(function*() {
      const refused = Metrics.repliesTotal("slack", "refused_host")
      const before = yield* counter(refused)
      for (
        const url of [
          "https://evil.example/hooks.slack.com",
          "https://hooks.slack.com.evil.example/x",
          "file:///etc/passwd",
          "not a url"
        ]
      ) {
        const outcome = yield* routeSigned(COMMANDS, command({ response_url: url }))
        assert.strictEqual(hybridOf(outcome).replyTarget, null, url)
        assert.strictEqual(hybridOf(outcome).store, true)
        assert.strictEqual(outcome.event?.message, "slack.reply_host_refused")
        assert.notInclude(JSON.stringify(outcome.event), "/x")
      }
      assert.strictEqual((yield* counter(refused)) - before, 4)
    }).pipe(Effect.provide(layer())))

  it.effect("the hostname is compared without its port and case-insensitively", () =>
    Effect.gen(function*() {
      for (const url of ["https://hooks.slack.com:8443/commands/1", "https://HOOKS.slack.com/commands/1"]) {
        assert.deepStrictEqual(hybridOf(yield* routeSigned(COMMANDS, command({ response_url: url }))).replyTarget, {
          kind: "slack",
          url
        })
      }
    }).pipe(Effect.provide(layer())))

  it.effect("configured replyHosts replace the default", () =>
    Effect.gen(function*() {
      const local = "http://127.0.0.1:9999/reply"
      assert.deepStrictEqual(hybridOf(yield* routeSigned(COMMANDS, command({ response_url: local }))).replyTarget, {
        kind: "slack",
        url: local
      })
      const slack = hybridOf(yield* routeSigned(COMMANDS, command()))
      assert.strictEqual(slack.replyTarget, null)
    }).pipe(Effect.provide(layer({ signingSecret: Redacted.make(SECRET), replyHosts: ["127.0.0.1"] }))))

  const hostArb = fc.oneof(
    fc.constantFrom(
      "hooks.slack.com",
      "HOOKS.Slack.COM",
      "hooks.slack.com.evil.example",
      "evilhooks.slack.com",
      "hooks.slack.co",
      "127.0.0.1",
      "127.0.0.2",
      "a.example"
    ),
    fc.domain()
  )
  it.prop(
    "a URL is a reply target exactly when its hostname (any case, any port, any user info) is a reply host",
    [
      fc.constantFrom("https", "http"),
      fc.option(fc.constantFrom("hooks.slack.com@", "user:pw@", "a.example@"), { nil: "" }),
      hostArb,
      fc.option(fc.integer({ min: 1, max: 65535 }).map((p) => `:${p}`), { nil: "" }),
      fc.webPath(),
      fc.constantFrom("hooks.slack.com", "127.0.0.1", "a.example")
    ],
    ([scheme, userinfo, host, port, path, extra]) => {
      const hosts = ["hooks.slack.com", extra]
      const url = `${scheme}://${userinfo}${host}${port}${path}`
      assert.strictEqual(Interactive.replyHostAllowed(url, hosts), hosts.includes(host.toLowerCase()), url)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it("only http(s) URLs: other schemes never", () => {
    for (
      const url of [
        "ftp://hooks.slack.com/x",
        "file://hooks.slack.com/etc",
        "javascript:hooks.slack.com",
        "//hooks.slack.com/x"
      ]
    ) {
      assert.isFalse(Interactive.replyHostAllowed(url, ["hooks.slack.com"]), url)
    }
  })
})

describe("Slack through the configuration and explain", () => {
  it.effect("explain shows the Hybrid decision with its budget and reply target", () =>
    Effect.gen(function*() {
      const config = Config.make({
        store: { kind: "memory", ephemeral: true },
        providers: { slack: { signingSecret: SECRET, syncBudgetMs: 1800 } },
        directory: directoryJson
      })
      const req = yield* signed(COMMANDS, command())
      const outcome = yield* route(req).pipe(Effect.provide(Cli.explainLayer(config)))
      const json = JSON.parse(JSON.stringify(Cli.explainJson(outcome)))
      assert.strictEqual(json.decision._tag, "Hybrid")
      assert.strictEqual(json.decision.budgetMs, 1800)
      assert.strictEqual(json.decision.mode, "first")
      assert.deepStrictEqual(json.decision.regions, ["de", "eu", "us"])
      assert.deepStrictEqual(json.decision.replyTarget, {
        kind: "slack",
        url: "https://hooks.slack.com/commands/T111/1/secret"
      })
    }))
})

describe("Slack through real HTTP (the edge answers)", () => {
  let server: EmbeddedServer
  beforeAll(async () => {
    const closed = await closedPort()
    server = await makeServer({
      store: { kind: "memory", ephemeral: true },
      providers: { slack: { signingSecret: SECRET } },
      directory: { ...directoryJson, regions: REGIONS.map((r) => ({ ...r, url: `http://127.0.0.1:${closed}` })) }
    }, { port: 0, worker: false, log: () => {} })
  })
  afterAll(async () => {
    await server?.close()
  })

  const signedNow = (body: string, secret = SECRET) => {
    const ts = String(Math.floor(Date.now() / 1000))
    const sig = createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex")
    return { "content-type": "application/json", "x-slack-request-timestamp": ts, "x-slack-signature": `v0=${sig}` }
  }

  it("url_verification: 200 with the challenge", async () => {
    const body = fixture("slack", "url_verification.json")
    const reply = await call(server.url, EVENT, { body, headers: signedNow(body) })
    assert.strictEqual(reply.status, 200)
    assert.strictEqual(reply.headers["content-type"], "application/json")
    assert.deepStrictEqual(JSON.parse(reply.text), { challenge: JSON.parse(body).challenge })
  })

  it("a forged request: 401 invalid_signature", async () => {
    const body = fixture("slack", "url_verification.json")
    for (const headers of [signedNow(body, "forged"), { "content-type": "application/json" }]) {
      const reply = await call(server.url, EVENT, { body, headers })
      assert.strictEqual(reply.status, 401)
      assert.strictEqual(JSON.parse(reply.text).error, "invalid_signature")
    }
  })

  it("no active organization: 202, empty body", async () => {
    const body = command({ team_id: "TNOORG" })
    const reply = await call(server.url, COMMANDS, { body, headers: { ...signedNow(body), "content-type": FORM } })
    assert.strictEqual(reply.status, 202)
    assert.strictEqual(reply.text, "")
  })
})

describe("Slack end to end: the decision carried out over real HTTP", () => {
  let server: EmbeddedServer
  let fast: Stub
  beforeAll(async () => {
    fast = await startStub(() => ({
      status: 200,
      headers: { "content-type": "application/json" },
      body: "{\"text\":\"linked\"}"
    }))
    const closed = await closedPort()
    server = await makeServer({
      store: { kind: "memory", ephemeral: true },
      providers: { slack: { signingSecret: SECRET } },
      directory: {
        ...directoryJson,
        regions: [
          { name: "de", url: `http://127.0.0.1:${closed}` },
          { name: "eu", url: fast.url },
          { name: "us", url: fast.url }
        ]
      }
    }, { port: 0, worker: false, log: () => {} })
  })
  afterAll(async () => {
    await server?.close()
    await fast?.close()
  })

  const post = (body: string) => {
    const ts = String(Math.floor(Date.now() / 1000))
    const sig = createHmac("sha256", SECRET).update(`v0:${ts}:${body}`).digest("hex")
    return call(server.url, COMMANDS, {
      body,
      headers: { "content-type": FORM, "x-slack-request-timestamp": ts, "x-slack-signature": `v0=${sig}` }
    })
  }

  it("link team <an eu organization>: only eu gets it, live, and Slack gets eu's answer", async () => {
    const before = fast.received.length
    const reply = await post(command({ text: "link team acme-eu" }))
    assert.strictEqual(reply.status, 200)
    assert.deepStrictEqual(JSON.parse(reply.text), { text: "linked" })
    assert.strictEqual(reply.headers["x-cellgate-region"], "eu")
    assert.strictEqual(fast.received.length - before, 1)
  })

  it("unlink team <a de organization> (region down): the empty 200 in time, stored for de with the response_url", async () => {
    const started = Date.now()
    const reply = await post(command({ text: "unlink team acme-de" }))
    assert.isBelow(Date.now() - started, 2500)
    assert.strictEqual(reply.status, 200)
    assert.strictEqual(reply.text, "")
    const [payload] = await server.runPromise(Effect.flatMap(Outbox.Outbox, (o) => o.head("slack:de:200", 1)))
    assert.strictEqual(payload?.region, "de")
    assert.deepStrictEqual(payload?.replyTarget, {
      kind: "slack",
      url: "https://hooks.slack.com/commands/T111/1/secret"
    })
  })
})
