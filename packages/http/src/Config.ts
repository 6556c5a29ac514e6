/**
 * The configuration file of INTERFACES.md as a `Schema`: every key optional with its default, secrets written
 * `{ "env": "NAME" }` resolved from the environment by the `Secret` schema (`ConfigFile`), the `directory` section
 * decoded with core's `Directory`.
 *
 * @since 0.1.0
 */
import { DeliverySettings, Directory } from "@cellgate/core"
import type { Redacted } from "effect"
import { Context, Data, Effect, Either, Option, ParseResult, Schema, SchemaAST as AST } from "effect"
import * as Fs from "node:fs"
import * as Ingress from "./internal/Ingress.js"

/**
 * @since 0.1.0
 * @category models
 */
export const ServerConfig = Schema.Struct({
  host: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1" }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 8080 }),
  maxBodyBytes: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), {
    default: () => Ingress.DEFAULT_MAX_BODY_BYTES
  }),
  readTimeoutMs: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10_000 })
})

/**
 * @since 0.1.0
 * @category models
 */
export const SqliteStore = Schema.Struct({
  kind: Schema.Literal("sqlite"),
  path: Schema.optionalWith(Schema.String.pipe(Schema.nonEmptyString()), { default: () => "./data/cellgate.db" }),
  synchronous: Schema.optionalWith(Schema.Literal("full", "normal"), { default: () => "full" as const })
})

/**
 * @since 0.1.0
 * @category models
 */
export const PostgresStore = Schema.Struct({
  kind: Schema.Literal("postgres"),
  url: Schema.Redacted(Schema.String.pipe(Schema.nonEmptyString()))
})

/**
 * Memory must say `ephemeral: true`: acknowledged webhooks die with the process.
 *
 * @since 0.1.0
 * @category models
 */
export const MemoryStore = Schema.Struct({
  kind: Schema.Literal("memory"),
  ephemeral: Schema.Literal(true).annotations({
    message: () => "a memory store must say \"ephemeral\": true (acknowledged webhooks die with the process)"
  })
})

/**
 * @since 0.1.0
 * @category models
 */
export const StoreConfig = Schema.Union(SqliteStore, PostgresStore, MemoryStore)
/**
 * @since 0.1.0
 * @category models
 */
export type StoreConfig = typeof StoreConfig.Type

/**
 * The `delivery` section (the worker's settings): core's `DeliverySettings.Settings`, declared there once with its
 * defaults.
 *
 * @since 0.1.0
 * @category models
 */
export const DeliveryConfig = DeliverySettings.Settings
/**
 * @since 0.1.0
 * @category models
 */
export type DeliveryConfig = typeof DeliveryConfig.Type

/**
 * @since 0.1.0
 * @category models
 */
export const ControlConfig = Schema.Struct({
  upstream: Schema.optional(
    Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "an http(s) URL" }))
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export const ProvidersConfig = Schema.Record({
  key: Schema.String,
  value: Schema.Struct({ webhookSecret: Schema.optional(Schema.Redacted(Schema.String)) })
})

/**
 * The whole configuration, secrets as strings (`make`); the file, with `{ "env": … }` secrets, is `ConfigFile`.
 *
 * @since 0.1.0
 * @category models
 */
export const Config = Schema.Struct({
  server: Schema.optionalWith(ServerConfig, { default: () => Schema.decodeSync(ServerConfig)({}) }),
  store: Schema.optionalWith(StoreConfig, {
    default: () => ({ kind: "sqlite", path: "./data/cellgate.db", synchronous: "full" }) as const
  }),
  control: Schema.optionalWith(ControlConfig, { default: () => ({}) }),
  delivery: Schema.optionalWith(DeliveryConfig, { default: () => DeliverySettings.defaults }),
  providers: Schema.optionalWith(ProvidersConfig, { default: () => ({}) }),
  directory: Schema.optional(Directory)
})
/**
 * @since 0.1.0
 * @category models
 */
export type Config = typeof Config.Type
/**
 * @since 0.1.0
 * @category models
 */
export type ConfigInput = typeof Config.Encoded

/**
 * A configuration that cannot be used: the file is missing or not JSON, a secret's environment variable is unset,
 * or a field is invalid. `path` names the field (`directory.regions.0.url`); the CLI exits 2.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly file: string
  readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>
}> {
  override get message() {
    return `invalid configuration ${this.file}:\n` +
      this.issues.map((i) => `  ${i.path === "" ? "(file)" : i.path}: ${i.message}`).join("\n")
  }
}

/**
 * Where `{ "env": "NAME" }` secrets are read from while a configuration is decoded (default `process.env`).
 *
 * @since 0.2.0
 * @category secrets
 */
export class SecretEnvironment extends Context.Reference<SecretEnvironment>()(
  "@cellgate/http/Config/SecretEnvironment",
  { defaultValue: (): Readonly<Record<string, string | undefined>> => process.env }
) {}

const SECRET_SHAPE = "a secret is a string or { \"env\": \"NAME\" } (the value is not shown)"

/**
 * `{ "env": "NAME" }`: a secret read from an environment variable (exactly that one key).
 *
 * @since 0.2.0
 * @category secrets
 */
export const EnvReference = Schema.Struct({ env: Schema.String.pipe(Schema.nonEmptyString()) }).annotations({
  identifier: "EnvReference",
  parseOptions: { onExcessProperty: "error" }
})

/**
 * A secret as the configuration file writes it: the string itself, or `{ "env": "NAME" }` resolved from
 * `SecretEnvironment` (an unset or empty variable is an issue naming the field). Decodes to the string; the field's
 * own schema (`Schema.Redacted`, `RegionSecret`…) takes it from there. Its messages never show the value.
 *
 * @since 0.2.0
 * @category secrets
 */
export const Secret = Schema.transformOrFail(
  Schema.Union(Schema.String, EnvReference).annotations({
    message: () => ({ message: SECRET_SHAPE, override: true })
  }),
  Schema.String,
  {
    strict: true,
    decode: (input, _, ast) =>
      typeof input === "string"
        ? ParseResult.succeed(input)
        : Effect.flatMap(SecretEnvironment, (env) => {
          const value = env[input.env]
          return value === undefined || value === ""
            ? ParseResult.fail(new ParseResult.Type(ast, input, `environment variable ${input.env} is not set`))
            : ParseResult.succeed(value)
        }),
    encode: ParseResult.succeed
  }
).annotations({ identifier: "Secret" })

const isRedactedDeclaration = (ast: AST.AST): boolean =>
  ast._tag === "Declaration" &&
  Option.exists(
    AST.getTypeConstructorAnnotation(ast),
    (c) => typeof c === "object" && c !== null && (c as { _tag?: unknown })._tag === "effect/Redacted"
  )

/**
 * `schema` with `Secret` in front of every secret field: every `Schema.Redacted` value (the configuration's own
 * fields and those of core's `Directory`) is decoded from `Secret`'s input, so "which fields are secrets" is said
 * once, by the schemas, and a secret field added to a schema accepts `{ "env": … }` with no list to update.
 */
const withSecrets = (ast: AST.AST): AST.AST => {
  switch (ast._tag) {
    case "Transformation":
      return isRedactedDeclaration(ast.to)
        ? new AST.Transformation(
          Schema.compose(Secret, Schema.make(ast.from), { strict: false }).ast,
          ast.to,
          ast.transformation,
          ast.annotations
        )
        : new AST.Transformation(withSecrets(ast.from), ast.to, ast.transformation, ast.annotations)
    case "TypeLiteral":
      return new AST.TypeLiteral(
        ast.propertySignatures.map((ps) =>
          new AST.PropertySignature(ps.name, withSecrets(ps.type), ps.isOptional, ps.isReadonly, ps.annotations)
        ),
        ast.indexSignatures.map((is) => new AST.IndexSignature(is.parameter, withSecrets(is.type), is.isReadonly)),
        ast.annotations
      )
    case "Union":
      return AST.Union.make(ast.types.map(withSecrets), ast.annotations)
    case "TupleType":
      return new AST.TupleType(
        ast.elements.map((e) => new AST.OptionalType(withSecrets(e.type), e.isOptional, e.annotations)),
        ast.rest.map((r) => new AST.Type(withSecrets(r.type), r.annotations)),
        ast.isReadonly,
        ast.annotations
      )
    case "Refinement":
      return new AST.Refinement(withSecrets(ast.from), ast.filter, ast.annotations)
    case "Suspend":
      return new AST.Suspend(() => withSecrets(ast.f()), ast.annotations)
    default:
      return ast
  }
}

/**
 * The configuration file: `Config` with `Secret` at every secret field (`store.url`, `providers.*.webhookSecret`,
 * `directory.regions.*.secret`, `directory.integrations.*.metadata.webhookSecret` / `sharedSecret` today), so
 * `{ "env": "NAME" }` is accepted there and resolved from `SecretEnvironment`.
 *
 * @since 0.2.0
 * @category models
 */
export const ConfigFile: Schema.Schema<Config, ConfigInput> = Schema.make(withSecrets(Config.ast))

const formatPath = (path: ReadonlyArray<PropertyKey>) => path.map(String).join(".")

/** Drops the "Expected undefined" alternatives of optional keys; merges the alternatives of one path. */
const readableIssues = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>) => {
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    if (issue.message.startsWith("Expected undefined")) continue
    const path = formatPath(issue.path)
    const list = byPath.get(path) ?? []
    if (!list.includes(issue.message)) list.push(issue.message)
    byPath.set(path, list)
  }
  return Array.from(byPath, ([path, messages]) => ({
    path,
    message: messages.length === 1 ? messages[0]! : messages.join("; or ")
  }))
}

/**
 * Decodes a parsed configuration file (`ConfigFile`: secrets resolved from `env`, default `process.env`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (
  raw: unknown,
  options: { readonly file?: string; readonly env?: Readonly<Record<string, string | undefined>> } = {}
): Either.Either<Config, ConfigError> => {
  const file = options.file ?? "<config>"
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return Either.left(new ConfigError({ file, issues: [{ path: "", message: "the configuration is a JSON object" }] }))
  }
  const decoded = Schema.decodeUnknown(ConfigFile, { errors: "all" })(raw)
  return Effect.runSync(Effect.either(
    options.env === undefined ? decoded : Effect.provideService(decoded, SecretEnvironment, options.env)
  )).pipe(
    Either.mapLeft((error) =>
      new ConfigError({
        file,
        issues: readableIssues(ParseResult.ArrayFormatter.formatErrorSync(error))
      })
    )
  )
}

/**
 * Reads and decodes the configuration file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<Config, ConfigError> =>
  Effect.suspend(() => {
    let text: string
    try {
      text = Fs.readFileSync(file, "utf8")
    } catch (error) {
      const code = (error as { code?: string }).code ?? "unreadable"
      return Effect.fail(new ConfigError({ file, issues: [{ path: "", message: `cannot read the file (${code})` }] }))
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (error) {
      return Effect.fail(
        new ConfigError({ file, issues: [{ path: "", message: `not valid JSON: ${(error as Error).message}` }] })
      )
    }
    return decode(raw, { file, env })
  })

/**
 * The app-level secret of a provider (`providers.<p>.webhookSecret`).
 *
 * @since 0.1.0
 * @category utils
 */
export const providerSecret = (config: Config, provider: string): Redacted.Redacted<string> | undefined =>
  config.providers[provider]?.webhookSecret

/**
 * A configuration with every default, for embedding and tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: ConfigInput): Config => Schema.decodeSync(Config)(input)
