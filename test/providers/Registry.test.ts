import { Provider, ProviderRegistry, Providers } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"

const registry = ProviderRegistry.make(Providers.builtins())

describe("built-in providers", () => {
  it("every provider of docs/routing.md#other-providers is built in, with its webhook paths", () => {
    const routes = Object.fromEntries(registry.all.map((p) => [p.name, p.routes]))
    assert.deepStrictEqual(routes, {
      jira_server: ["issue-updated/<token>/"],
      github: ["webhook/"],
      github_enterprise: ["webhook/"],
      gitlab: ["webhook/"],
      jira: ["issue-updated/", "issue/<issue key>/"],
      bitbucket: ["organizations/<org id>/webhook/"],
      bitbucket_server: ["organizations/<org id>/webhook/<integration id>/"],
      vsts: ["issue-updated/"],
      msteams: ["webhook/"],
      slack: ["commands/", "action/", "options-load/", "event/"],
      discord: ["interactions/"],
      plugins: ["github/organizations/<org id>/webhook/", "bitbucket/organizations/<org id>/webhook/"]
    })
  })

  it("classifies each webhook path to its provider, with dashes turned into underscores", () => {
    const cases: ReadonlyArray<readonly [string, string, string, ReadonlyArray<string>]> = [
      ["/extensions/github/webhook/", "github", "webhook", []],
      ["/extensions/github-enterprise/webhook/?x=1", "github_enterprise", "webhook", []],
      ["/extensions/gitlab/webhook/", "gitlab", "webhook", []],
      ["/extensions/jira/issue-updated/?jwt=abc", "jira", "issue-updated", []],
      ["/extensions/jira/issue/APP%2D1/", "jira", "issue", ["APP-1"]],
      ["/extensions/bitbucket/organizations/12/webhook/", "bitbucket", "webhook", ["12"]],
      ["/extensions/bitbucket-server/organizations/12/webhook/7/", "bitbucket_server", "webhook", ["12", "7"]],
      ["/extensions/vsts/issue-updated/", "vsts", "issue-updated", []],
      ["/extensions/msteams/webhook/", "msteams", "webhook", []],
      ["/extensions/slack/options-load/", "slack", "options-load", []],
      ["/extensions/discord/interactions/", "discord", "interactions", []]
    ]
    for (const [path, provider, route, params] of cases) {
      const c = Provider.classify(path, registry)
      assert.strictEqual(c._tag, "Provider", path)
      if (c._tag !== "Provider") continue
      assert.strictEqual(c.provider.name, provider, path)
      assert.deepStrictEqual(c.match, { route, params }, path)
    }
  })

  it("setup and link paths, and vercel / google, are Control", () => {
    for (
      const path of [
        "/extensions/github/setup/",
        "/extensions/msteams/link/",
        "/extensions/vercel/webhook/",
        "/extensions/google/webhook/"
      ]
    ) {
      assert.strictEqual(Provider.classify(path, registry)._tag, "Control", path)
    }
  })
})
