// Issue 10 item 7: `regions[].secret` is `whsec_` + valid base64 of at least 24 bytes, checked once (core's
// `RegionSecret` schema) when the configuration is loaded: anything else exits 2 naming the field, and the message
// never depends on (so never shows) the value. A secret that could not sign would otherwise stall its mailboxes.
import { Directory, isRegionSecret, RegionSecret } from "@cellgate/core"
import { Cli, Config, makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, FastCheck as fc, Option, Redacted, Schema } from "effect"
import { ensureBuilt, runCli, tempDir, writeJson } from "../support/Http.js"

const FIELD = "directory.regions.1.secret"
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")

const configWith = (secret: unknown) => ({
  store: { kind: "memory", ephemeral: true },
  directory: {
    regions: [
      { name: "us", url: "http://us.example" },
      { name: "eu", url: "http://eu.example", secret }
    ]
  }
})

/** Secrets that must be refused: every way of not being `whsec_` + base64 of ≥ 24 bytes. */
const badSecret = fc.oneof(
  // no prefix (or a wrong one)
  fc.string({ maxLength: 60 }).filter((s) => !s.startsWith("whsec_")),
  fc.uint8Array({ minLength: 24, maxLength: 48 }).map((k) => "WHSEC_" + b64(k)),
  fc.uint8Array({ minLength: 24, maxLength: 48 }).map((k) => b64(k)),
  // too short a key (0 to 23 bytes), the shape of `whsec_abc`
  fc.uint8Array({ maxLength: 23 }).map((k) => "whsec_" + b64(k)),
  fc.constantFrom("whsec_abc", "whsec_", "whsec_AAAA", "whsec_ZGVtbw=="),
  // a character outside the base64 alphabet somewhere in a long enough one
  fc.tuple(
    fc.uint8Array({ minLength: 24, maxLength: 48 }),
    fc.constantFrom("!", "-", "_", " ", "*", ".", "é", "\t", "\n", "="),
    fc.nat()
  ).map(([k, c, at]) => {
    const s = b64(k)
    const i = at % (s.length + 1)
    return "whsec_" + s.slice(0, i) + c + s.slice(i)
  }),
  // a length that is not a multiple of 4
  fc.uint8Array({ minLength: 27, maxLength: 48 }).map((k) => "whsec_" + b64(k).replace(/=+$/, "").slice(0, -1))
).filter((s) => !isRegionSecret(s))

const goodSecret = fc.uint8Array({ minLength: 24, maxLength: 64 }).map((k) => "whsec_" + b64(k))

/** What loading the configuration gives, through the file and the CLI's exit code, as `cellgate serve` does. */
const loadFile = (dir: string, value: unknown, env: Record<string, string> = {}) =>
  Effect.runSync(Effect.exit(Config.load(writeJson(dir, "config.json", value), env)))

const failure = (exit: Exit.Exit<unknown, Config.ConfigError>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

let tmp: ReturnType<typeof tempDir>
beforeAll(() => {
  tmp = tempDir()
})
afterAll(() => tmp?.cleanup())

describe("region secrets are checked when the configuration is loaded", () => {
  const reference = () => loadFile(tmp.dir, configWith("whsec_abc"))

  it.prop("a bad secret (inline or from { env }) fails with exit 2, names the field, never depends on the value", [
    badSecret,
    fc.boolean()
  ], ([secret, fromEnv]) => {
    const exit = fromEnv
      ? loadFile(tmp.dir, configWith({ env: "CELLGATE_TEST_REGION_SECRET" }), { CELLGATE_TEST_REGION_SECRET: secret })
      : loadFile(tmp.dir, configWith(secret))
    // an empty variable is "not set", an issue of its own (same field)
    if (fromEnv && secret === "") {
      assert.strictEqual(Cli.exitCode(exit), 2)
      return
    }
    assert.isTrue(Exit.isFailure(exit))
    assert.strictEqual(Cli.exitCode(exit), 2)
    const error = failure(exit)
    assert.instanceOf(error, Config.ConfigError)
    assert.deepStrictEqual(error!.issues.map((i) => i.path), [FIELD])
    // the whole message is the same whatever the value: it cannot show it
    assert.strictEqual(error!.message, failure(reference())!.message)
    if (secret.length >= 8) assert.notInclude(error!.message, secret)
  }, { fastCheck: { numRuns: 300 } })

  it.prop("a valid secret is accepted and stays Redacted", [goodSecret], ([secret]) => {
    const exit = loadFile(tmp.dir, configWith(secret))
    assert.isTrue(Exit.isSuccess(exit))
    if (Exit.isSuccess(exit)) {
      const got = exit.value.directory!.regions[1]!.secret!
      assert.strictEqual(Redacted.value(got), secret)
      assert.notInclude(String(got), secret)
    }
  }, { fastCheck: { numRuns: 100 } })

  it("the Standard Webhooks vector's secret (24 bytes) is the shortest accepted", () => {
    assert.isTrue(isRegionSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    assert.isFalse(isRegionSecret("whsec_" + b64(new Uint8Array(23))))
  })

  it("the one schema: a Directory decoded or constructed anywhere refuses it too", () => {
    assert.isTrue(Either.isLeft(Schema.decodeUnknownEither(RegionSecret)("whsec_abc")))
    assert.isTrue(
      Either.isLeft(Schema.decodeUnknownEither(Directory)({ regions: [{ name: "us", url: "http://x", secret: "x" }] }))
    )
    assert.throws(() =>
      new Directory({ regions: [{ name: "us", url: "http://x", secret: Redacted.make("x") } as any] })
    )
  })

  it("makeServer refuses it before starting", async () => {
    await expect(makeServer(configWith("whsec_abc") as any, { port: 0, worker: false, log: () => {} })).rejects
      .toBeInstanceOf(Config.ConfigError)
  })

  it("cellgate serve exits 2 naming the field, without the value", async () => {
    ensureBuilt()
    const secret = "whsec_not-base64-at-all-but-long-enough!"
    const file = writeJson(tmp.dir, "serve-bad-secret.json", configWith(secret))
    const run = await runCli(["serve", "--config", file, "--port", "0"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(FIELD)
    expect(run.stderr + run.stdout).not.toContain("not-base64")
    expect(run.stdout).not.toContain("listening")
  })
})
