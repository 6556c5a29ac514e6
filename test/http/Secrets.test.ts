// The `Secret` schema of the configuration file and the stdout log sink's exit hook in scope.
import { Config, Logging } from "@cellgate/http"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, FastCheck as fc, Redacted, Schema, Scope } from "effect"

const REGION_SECRET = "whsec_" + Buffer.from("the us region signing key 0123").toString("base64")

/** Every secret field of the file, with a valid value for it. */
const fields = [
  { path: "store.url", value: "postgres://u:p@h/db", at: (v: unknown) => ({ store: { kind: "postgres", url: v } }) },
  {
    path: "providers.github.webhookSecret",
    value: "gh-app-secret",
    at: (v: unknown) => ({ providers: { github: { webhookSecret: v } } })
  },
  {
    path: "directory.regions.0.secret",
    value: REGION_SECRET,
    at: (v: unknown) => ({ directory: { regions: [{ name: "us", url: "http://us.test", secret: v }] } })
  },
  {
    path: "directory.integrations.0.metadata.webhookSecret",
    value: "jira-secret",
    at: (v: unknown) => ({
      directory: { integrations: [{ id: 1, provider: "jira_server", externalId: "x", metadata: { webhookSecret: v } }] }
    })
  },
  {
    path: "directory.integrations.0.metadata.sharedSecret",
    value: "connect-secret",
    at: (v: unknown) => ({
      directory: { integrations: [{ id: 1, provider: "jira", externalId: "x", metadata: { sharedSecret: v } }] }
    })
  }
] as const

const read = (config: Config.Config, path: string): unknown =>
  path.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], config)

const envName = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,20}$/)

describe("Secret", () => {
  it.prop("every secret field takes { env } and decodes to the variable's value, Redacted", [
    fc.constantFrom(...fields),
    envName
  ], ([field, name]) => {
    const result = Config.decode(field.at({ env: name }), { env: { [name]: field.value } })
    assert.isTrue(Either.isRight(result), Either.isLeft(result) ? result.left.message : "")
    const got = read(Either.getOrThrow(result), field.path)
    assert.isTrue(Redacted.isRedacted(got))
    assert.strictEqual(Redacted.value(got as Redacted.Redacted<string>), field.value)
    assert.notInclude(String(got), field.value)
  })

  it.prop("an unset or empty variable is one issue naming the field and the variable", [
    fc.constantFrom(...fields),
    envName,
    fc.boolean()
  ], ([field, name, empty]) => {
    const result = Config.decode(field.at({ env: name }), { env: empty ? { [name]: "" } : {} })
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) {
      assert.deepStrictEqual(result.left.issues, [
        { path: field.path, message: `environment variable ${name} is not set` }
      ])
    }
  })

  it.prop("a malformed reference names the field and never shows the value", [
    fc.constantFrom(...fields),
    fc.oneof(
      fc.record({ env: fc.string({ minLength: 1 }), extra: fc.string() }),
      fc.record({ env: fc.constant("") }),
      fc.record({ env: fc.integer() }),
      fc.record({ Env: fc.string() })
    )
  ], ([field, reference]) => {
    const result = Config.decode(field.at(reference), { env: {} })
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) {
      assert.deepStrictEqual(result.left.issues.map((i) => i.path), [field.path])
      assert.include(result.left.issues[0]!.message, "the value is not shown")
      for (const v of Object.values(reference)) if (String(v).length >= 6) assert.notInclude(result.left.message, v)
    }
  })

  it("is the schema of the file: ConfigFile decodes with SecretEnvironment from the context", () => {
    const decoded = Schema.decodeUnknown(Config.ConfigFile)({ providers: { gitlab: { webhookSecret: { env: "G" } } } })
      .pipe(Effect.provideService(Config.SecretEnvironment, { G: "from-context" }), Effect.runSync)
    expect(Redacted.value(decoded.providers.gitlab!.webhookSecret!)).toBe("from-context")
  })

  it("{ env } outside a secret field is not resolved", () => {
    const result = Config.decode({ control: { upstream: { env: "U" } } }, { env: { U: "http://x.test" } })
    assert.isTrue(Either.isLeft(result))
  })
})

describe("the batched stdout sink", () => {
  it("registers its exit hook while its scope is open, and flushes and removes it when the scope closes", () => {
    const before = process.listenerCount("exit")
    const written: Array<string> = []
    const scope = Effect.runSync(Scope.make())
    const writers = Effect.runSync(
      Scope.extend(Effect.all([1, 2, 3].map(() => Logging.batched((t) => written.push(t)))), scope)
    )
    expect(process.listenerCount("exit")).toBe(before + 3)
    writers[0]!("a")
    writers[0]!("b")
    expect(written).toEqual([])
    Effect.runSync(Scope.close(scope, Exit.void))
    expect(written).toEqual(["a\nb\n"])
    expect(process.listenerCount("exit")).toBe(before)
  })
})
