import { Memory } from "@cellgate/adapters"
import { JiraCloud } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Jose from "jose"
import {
  assertAccepted,
  assertControl,
  assertError,
  fixture,
  handle,
  ORGANIZATIONS,
  REGIONS,
  request,
  route,
  stored,
  testLayer
} from "./support.js"

const vector = JSON.parse(fixture("jira-cloud", "connect_jwt_vector.derived.json"))
const hook = vector.webhook_request
const statusBody = fixture("jira-cloud", hook.body_file)
const assigneeBody = fixture("jira-cloud", "sentry_edit_issue_assignee.json")
const SECRET: string = hook.shared_secret // "garden"
const CLIENT_KEY: string = hook.claims.iss // "it2may+cody"
const VECTOR_JWT: string = hook.headers.Authorization.slice("JWT ".length)
const NOW = (hook.claims.iat + 60) * 1000 // inside [iat, exp]

const directoryJson = {
  regions: REGIONS,
  organizations: ORGANIZATIONS,
  integrations: [
    { id: 130, provider: "jira", externalId: CLIENT_KEY, metadata: { sharedSecret: SECRET } },
    { id: 131, provider: "jira", externalId: "no-orgs", metadata: { sharedSecret: SECRET } },
    { id: 132, provider: "jira", externalId: "disabled", status: "disabled", metadata: { sharedSecret: SECRET } },
    { id: 133, provider: "jira", externalId: "open" },
    { id: 134, provider: "jira_server", externalId: "server", metadata: { webhookSecret: SECRET } }
  ],
  organizationIntegrations: [
    { organizationId: 1, integrationId: 130 },
    { organizationId: 2, integrationId: 130 },
    { organizationId: 4, integrationId: 130 },
    { organizationId: 3, integrationId: 130 },
    { organizationId: 1, integrationId: 131, status: "disabled" },
    { organizationId: 2, integrationId: 132 },
    { organizationId: 2, integrationId: 133 },
    { organizationId: 2, integrationId: 134 }
  ]
}

const TestLive = () => testLayer(directoryJson)
const at = <A, E, R>(self: Effect.Effect<A, E, R>, ms = NOW) => Effect.zipRight(TestClock.setTime(ms), self)

const PATH = "/extensions/jira/issue-updated/"
const ISSUE_PATH = "/extensions/jira/issue/APP-123/"

const sign = (claims: Record<string, unknown>, secret = SECRET, alg = "HS256") =>
  Effect.promise(() =>
    new Jose.SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(secret))
  )

/** A Connect JWT for `method path` (qsh computed the Atlassian way), valid at NOW. */
const tokenFor = (method: string, path: string, overrides: Record<string, unknown> = {}, secret = SECRET) =>
  Effect.gen(function*() {
    const qsh = yield* JiraCloud.queryStringHash(method, path)
    return yield* sign({ iss: CLIENT_KEY, iat: hook.claims.iat, exp: hook.claims.exp, qsh, ...overrides }, secret)
  })

const post = (token: string | undefined, path = PATH, method = "POST", body = statusBody) =>
  handle(request(path, { method, body, headers: token === undefined ? {} : { authorization: `JWT ${token}` } }))

describe("Jira Cloud canonical request and qsh", () => {
  it("Atlassian's documented canonical request", () => {
    const example = vector.documented_examples.canonical_request_example
    const url = new URL(example.url)
    assert.strictEqual(JiraCloud.canonicalRequest("get", url.pathname + "?" + url.search.slice(1)), example.canonical)
    assert.strictEqual(
      JiraCloud.canonicalRequest(
        "GET",
        "/path/to/service?zee_last=param&repeated=parameter 1&first=param&repeated=parameter 2"
      ),
      example.canonical
    )
  })

  it.effect("the webhook vector and the query-parameter vector", () =>
    Effect.gen(function*() {
      assert.strictEqual(JiraCloud.canonicalRequest(hook.method, hook.path), hook.canonical_request)
      assert.strictEqual(yield* JiraCloud.queryStringHash(hook.method, hook.path), hook.qsh)
      const q = vector.query_param_example
      assert.strictEqual(JiraCloud.canonicalRequest("POST", q.url), q.canonical_request)
      assert.strictEqual(yield* JiraCloud.queryStringHash("POST", q.url), q.qsh)
      // jwt is left out; the trailing slash does not count
      assert.strictEqual(JiraCloud.canonicalRequest("POST", `${q.url}&jwt=abc`), q.canonical_request)
      assert.strictEqual(JiraCloud.canonicalRequest("POST", "/extensions/jira/issue-updated"), hook.canonical_request)
    }))

  it("percent-encoding is RFC 3986 (space %20, * ' ( ) ! encoded, ~ kept), names sorted", () => {
    assert.strictEqual(
      JiraCloud.canonicalRequest("GET", "/a/?b=x+y*&a=%7E!&c"),
      "GET&/a&a=~%21&b=x%20y%2A&c="
    )
    assert.strictEqual(JiraCloud.canonicalRequest("GET", "/"), "GET&/&")
  })
})

describe("jira issue-updated/", () => {
  it.effect("the derived vector (Authorization: JWT …): one payload per region, jira:<region>:<id>, 202", () =>
    at(Effect.gen(function*() {
      const outcome = yield* route(
        request(PATH, { body: statusBody, headers: { authorization: hook.headers.Authorization } })
      )
      assert.strictEqual(outcome.decision._tag, "Enqueue")
      if (outcome.decision._tag !== "Enqueue") return
      assert.deepStrictEqual<ReadonlyArray<unknown>>(outcome.decision.targets, [
        { region: "de", mailbox: "jira:de:130" },
        { region: "eu", mailbox: "jira:eu:130" },
        { region: "us", mailbox: "jira:us:130" }
      ])
      assert.deepStrictEqual<ReadonlyArray<number>>(outcome.organizations, [1, 2, 3, 4])
      assertAccepted(yield* post(VECTOR_JWT))
      assertAccepted(yield* post(VECTOR_JWT, PATH, "POST", assigneeBody))
      assert.deepStrictEqual(yield* stored, [["jira:de:130", "de", 2], ["jira:eu:130", "eu", 2], [
        "jira:us:130",
        "us",
        2
      ]])
    })).pipe(Effect.provide(TestLive())))

  it.effect("the JWT in ?jwt= (left out of the qsh)", () =>
    at(Effect.gen(function*() {
      assertAccepted(yield* post(undefined, `${PATH}?jwt=${VECTOR_JWT}`))
      const q = vector.query_param_example
      const token = yield* tokenFor("POST", q.url)
      assertAccepted(yield* post(undefined, `${q.url}&jwt=${token}`))
      assert.strictEqual((yield* stored).length, 3)
    })).pipe(Effect.provide(TestLive())))

  it.effect("no JWT → 404", () =>
    at(Effect.gen(function*() {
      assertError(yield* post(undefined), 404, "not_found")
      assertError(
        yield* handle(request(PATH, { body: statusBody, headers: { authorization: `Bearer ${VECTOR_JWT}` } })),
        404
      )
      assertError(yield* post(undefined, `${PATH}?jwt=`), 404)
      assert.deepStrictEqual(yield* stored, [])
    })).pipe(Effect.provide(TestLive())))

  it.effect("no integration for iss (unknown, disabled, another provider's, no iss, not a JWT) → 404", () =>
    at(Effect.gen(function*() {
      for (const iss of ["nobody", "disabled", "server"]) {
        assertError(yield* post(yield* tokenFor("POST", PATH, { iss })), 404, "not_found")
      }
      assertError(yield* post(yield* tokenFor("POST", PATH, { iss: undefined })), 404)
      assertError(yield* post("not-a-jwt"), 404)
      assert.deepStrictEqual(yield* stored, [])
    })).pipe(Effect.provide(TestLive())))

  it.effect("no active organization → 400", () =>
    at(Effect.gen(function*() {
      assertError(yield* post(yield* tokenFor("POST", PATH, { iss: "no-orgs" })), 400, "no_active_organization")
    })).pipe(Effect.provide(TestLive())))

  describe("a JWT that does not verify → 404, nothing stored", () => {
    const cases: ReadonlyArray<readonly [string, Effect.Effect<string>, number?]> = [
      ["signed with another secret", tokenFor("POST", PATH, {}, "not-garden")],
      ["expired (the vector, after its exp)", Effect.succeed(VECTOR_JWT), (hook.claims.exp + 1) * 1000],
      ["no exp", tokenFor("POST", PATH, { exp: undefined })],
      ["not yet valid (nbf)", tokenFor("POST", PATH, { nbf: hook.claims.exp })],
      ["no qsh", tokenFor("POST", PATH, { qsh: undefined })],
      ["qsh of another path", tokenFor("POST", "/extensions/jira/issue-updated/other")],
      ["qsh of another method", tokenFor("GET", PATH)],
      ["qsh of another query", tokenFor("POST", `${PATH}?a=1`)],
      [
        "alg none",
        Effect.succeed(`${Buffer.from("{\"alg\":\"none\"}").toString("base64url")}.${VECTOR_JWT.split(".")[1]}.`)
      ],
      [
        "HS512",
        Effect.flatMap(
          JiraCloud.queryStringHash("POST", PATH),
          (qsh) => sign({ iss: CLIENT_KEY, exp: hook.claims.exp, qsh }, SECRET, "HS512")
        )
      ]
    ]
    for (const [name, token, now] of cases) {
      it.effect(name, () =>
        at(
          Effect.gen(function*() {
            assertError(yield* post(yield* token), 404, "not_found")
            assert.deepStrictEqual(yield* stored, [])
          }),
          now
        ).pipe(Effect.provide(TestLive())))
    }
  })

  it.effect("the vector's query-less qsh does not cover a query string", () =>
    at(Effect.gen(function*() {
      assertError(yield* post(VECTOR_JWT, `${PATH}?user_id=admin`), 404)
    })).pipe(Effect.provide(TestLive())))

  it.effect("an integration without sharedSecret routes unverified", () =>
    at(Effect.gen(function*() {
      assertAccepted(yield* post(yield* tokenFor("POST", "/elsewhere", { iss: "open" }, "whatever")))
      assert.deepStrictEqual(yield* stored, [["jira:eu:133", "eu", 1]])
    })).pipe(Effect.provide(TestLive())))
})

describe("jira issue/<key>/", () => {
  it.effect("→ Forward to the first region (by name), the answer relayed", () =>
    at(Effect.gen(function*() {
      const token = yield* tokenFor("GET", ISSUE_PATH)
      const req = request(ISSUE_PATH, { method: "GET", headers: { authorization: `JWT ${token}` } })
      const outcome = yield* route(req)
      assert.strictEqual(outcome.decision._tag, "Forward")
      if (outcome.decision._tag !== "Forward") return
      assert.strictEqual(outcome.decision.mode, "first")
      assert.deepStrictEqual<ReadonlyArray<string>>(outcome.decision.regions, ["de", "eu", "us"])
      const response = yield* handle(req)
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["x-cellgate-region"], "de")
      const sent = yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
      assert.deepStrictEqual(sent.map((s) => [s.region, s.request.method, s.request.path]), [["de", "GET", ISSUE_PATH]])
      assert.deepStrictEqual(yield* stored, [])
    })).pipe(Effect.provide(TestLive())))

  it.effect("the JWT in ?jwt=, with other query parameters", () =>
    at(Effect.gen(function*() {
      const path = `${ISSUE_PATH}?xdm_e=https%3A%2F%2Fx.atlassian.net&cp=&lic=none`
      const token = yield* tokenFor("GET", path)
      const r = yield* handle(request(`${path}&jwt=${token}`, { method: "GET" }))
      assert.strictEqual(r.status, 200)
    })).pipe(Effect.provide(TestLive())))

  it.effect("the failure answers are those of issue-updated/", () =>
    at(Effect.gen(function*() {
      assertError(yield* post(undefined, ISSUE_PATH, "GET"), 404)
      assertError(yield* post(yield* tokenFor("GET", ISSUE_PATH, { iss: "nobody" }), ISSUE_PATH, "GET"), 404)
      assertError(yield* post(yield* tokenFor("GET", PATH), ISSUE_PATH, "GET"), 404)
      assertError(yield* post(yield* tokenFor("GET", ISSUE_PATH, { iss: "no-orgs" }), ISSUE_PATH, "GET"), 400)
      const sent = yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
      assert.strictEqual(sent.length, 0)
    })).pipe(Effect.provide(TestLive())))
})

describe("jira paths", () => {
  const control = [
    "/extensions/jira/descriptor/",
    "/extensions/jira/installed/",
    "/extensions/jira/uninstalled/",
    "/extensions/jira/configure/",
    "/extensions/jira/search/acme/1/",
    "/extensions/jira/ui-hook/",
    "/extensions/jira/issue-updated",
    "/extensions/jira/issue-updated//",
    "/extensions/jira/issue/APP-1",
    "/extensions/jira/issue/APP-1/x/",
    "/extensions/jira/issue//"
  ]
  for (const path of control) {
    it.effect(`${path} → Control`, () =>
      at(Effect.gen(function*() {
        const token = yield* tokenFor("POST", path)
        const outcome = yield* route(request(path, { headers: { authorization: `JWT ${token}` } }))
        assert.strictEqual(outcome.decision._tag, "Control")
        assertControl(yield* post(token, path))
      })).pipe(Effect.provide(TestLive())))
  }
})
