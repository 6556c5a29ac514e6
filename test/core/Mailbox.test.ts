// The one mailbox-name helper spells every provider's mailboxes exactly as each provider spelled them before.
import { Mailbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

// the seven spellings the providers declared, kept here as the reference
const before = {
  bucketed: (provider: string, region: string, id: number, bucket: number | undefined) =>
    bucket === undefined ? `${provider}:${region}:${id}` : `${provider}:${region}:${id}:${bucket}`,
  plain: (provider: string, region: string, id: number) => `${provider}:${region}:${id}`
}

const text = FastCheck.string({ unit: "grapheme", maxLength: 12 })
const id = FastCheck.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const bucket = FastCheck.option(FastCheck.integer({ min: 0, max: 99 }), { nil: undefined })

describe("Mailbox.name", () => {
  it.prop("is byte-identical to the bucketed spelling (GitHub, GitLab, Jira Server)", [text, text, id, bucket], (
    [provider, region, integrationId, b]
  ) => Mailbox.name(provider, region, integrationId, b) === before.bucketed(provider, region, integrationId, b))

  it.prop("is byte-identical to the plain spelling (Jira Cloud, MS Teams, VSTS, Bitbucket)", [text, text, id], (
    [provider, region, integrationId]
  ) => Mailbox.name(provider, region, integrationId) === before.plain(provider, region, integrationId))

  it("examples", () => {
    assert.strictEqual(Mailbox.name("github", "us", 12, 7), "github:us:12:7")
    assert.strictEqual(Mailbox.name("github", "us", 12, undefined), "github:us:12")
    assert.strictEqual(Mailbox.name("jira_server", "eu", 10, 0), "jira_server:eu:10:0")
    assert.strictEqual(Mailbox.name("bitbucket", "de", 4), "bitbucket:de:4")
  })
})
