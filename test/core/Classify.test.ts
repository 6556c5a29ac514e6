import { control, Provider, ProviderRegistry } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"

const provider = (name: string, routes: ReadonlyArray<readonly [string, RegExp]>): Provider.Provider => ({
  name,
  routes: routes.map(([r]) => r),
  match: Provider.pathMatcher(routes),
  route: () =>
    Effect.succeed({ provider: name, decision: control, reason: "", integration: null, organizations: [], regions: [] })
})

const registry = ProviderRegistry.make([
  provider("jira_server", [["issue-updated", /^issue-updated\/([^/]+)\/$/]]),
  provider("github", [["webhook", /^webhook\/$/]]),
  provider("bitbucket_server", [["webhook", /^organizations\/(\d+)\/webhook\/(\d+)\/$/]])
])

const routed = (path: string) => {
  const c = Provider.classify(path, registry)
  return c._tag === "Provider" ? `${c.provider.name}:${c.match.route}:${c.match.params.join(",")}` : "Control"
}

describe("classify", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["/extensions/github/webhook/", "github:webhook:"],
    ["/extensions/github/webhook/?x=1", "github:webhook:"],
    ["/extensions/github/webhook", "Control"],
    ["/extensions/github/webhook//", "Control"],
    ["/extensions/github/setup/", "Control"],
    ["/extensions/github/webhook/link/", "Control"],
    ["/extensions/github/install/123/", "Control"],
    ["/extensions/jira-server/issue-updated/abc/", "jira_server:issue-updated:abc"],
    ["/extensions/jira-server/issue-updated/a%2Eb%20c/", "jira_server:issue-updated:a.b c"],
    ["/extensions/jira-server/issue-updated/%E0%A4%A/", "jira_server:issue-updated:%E0%A4%A"],
    ["/extensions/jira-server/issue-updated//", "Control"],
    ["/extensions/jira-server/issue-updated/abc", "Control"],
    ["/extensions/jira-server/search/1/2/", "Control"],
    ["/extensions/bitbucket-server/organizations/4/webhook/9/", "bitbucket_server:webhook:4,9"],
    ["/extensions/bitbucket--server/organizations/4/webhook/9/", "Control"],
    ["/extensions/unknown/webhook/", "Control"],
    ["/extensions//webhook/", "Control"],
    ["/extensions/", "Control"],
    ["/extensions", "Control"],
    ["/api/0/organizations/", "Control"],
    ["/", "Control"],
    ["/EXTENSIONS/github/webhook/", "Control"]
  ]
  for (const [path, expected] of cases) {
    it(`${path} → ${expected}`, () => assert.strictEqual(routed(path), expected))
  }

  it("names the provider of an unknown or non-webhook path", () => {
    const unknown = Provider.classify("/extensions/no-such-thing/webhook/", registry)
    assert.deepStrictEqual(unknown, { _tag: "Control", provider: "no_such_thing", reason: "unknown provider" })
    const other = Provider.classify("/extensions/github/search/1/", registry)
    assert.deepStrictEqual(other, { _tag: "Control", provider: "github", reason: "not a webhook path" })
  })

  it.prop("only /extensions/ paths that are not setup/link can ever be routed", [fc.webPath()], ([path]) => {
    const c = Provider.classify(path, registry)
    if (c._tag === "Provider") {
      assert.isTrue(path.startsWith("/extensions/"))
      assert.isFalse(path.split("?")[0]!.endsWith("/setup/") || path.split("?")[0]!.endsWith("/link/"))
    }
  }, { fastCheck: { numRuns: 500 } })
})
