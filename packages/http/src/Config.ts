/**
 * The configuration file of docs/interfaces.md as a `Schema`: every key optional with its default, secrets written
 * `{ "env": "NAME" }` resolved from the environment by the `Secret` schema (`ConfigFile`), the `directory` section
 * decoded with core's `Directory`.
 *
 * @since 0.1.0
 */
import { DeliverySettings, Directory, Providers, ShedRules } from "@cellgate/core"
import type { Redacted } from "effect"
import { Context, Data, Effect, Either, Option, ParseResult, Schema, SchemaAST as AST } from "effect"
import * as Fs from "node:fs"
import * as ConfigKeys from "./internal/ConfigKeys.js"
import * as Ingress from "./internal/Ingress.js"
import { TelemetryConfig } from "./Telemetry.js"

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
 * Whether `url` parses as a `postgres://` (or `postgresql://`) URL with a host: a malformed URL is a configuration
 * error, never a connection attempt to a host parsed out of it.
 *
 * @since 0.2.0
 * @category models
 */
export const isPostgresUrl = (url: string): boolean => {
  try {
    const parsed = new URL(url)
    return (parsed.protocol === "postgres:" || parsed.protocol === "postgresql:") && parsed.hostname !== ""
  } catch {
    return false
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export const PostgresStore = Schema.Struct({
  kind: Schema.Literal("postgres"),
  url: Schema.Redacted(Schema.String.pipe(
    Schema.nonEmptyString(),
    Schema.filter(isPostgresUrl, {
      message: () =>
        "not a PostgreSQL URL: postgres://user:password@host:port/database, special characters of the password " +
        "percent-encoded (the value is not shown)"
    })
  ))
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

const SyncBudgetMs = Schema.optionalWith(
  Schema.Int.pipe(Schema.between(1, 3000, { message: () => "an integer from 1 to 3000 (Slack and Discord wait 3 s)" })),
  { default: () => 2000 }
)
const ReplyHosts = Schema.Array(Schema.String.pipe(Schema.nonEmptyString()))

/**
 * `providers.slack` (docs/routing.md#slack): no `signingSecret`, every Slack webhook answers 401.
 *
 * @since 0.2.0
 * @category models
 */
export const SlackConfig = Schema.Struct({
  signingSecret: Schema.optional(Schema.Redacted(Schema.String.pipe(Schema.nonEmptyString()))),
  syncBudgetMs: SyncBudgetMs,
  replyHosts: Schema.optionalWith(ReplyHosts, { default: () => ["hooks.slack.com"] })
})

/**
 * `providers.discord` (docs/routing.md#discord): no `publicKey`, every Discord interaction answers 401. `replyHosts` defaults
 * to the hostname of `apiBaseUrl`.
 *
 * @since 0.2.0
 * @category models
 */
export const DiscordConfig = Schema.Struct({
  publicKey: Schema.optional(
    Schema.String.pipe(Schema.pattern(/^[0-9a-fA-F]{64}$/, { message: () => "an Ed25519 public key: 64 hex digits" }))
  ),
  syncBudgetMs: SyncBudgetMs,
  apiBaseUrl: Schema.optionalWith(
    Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "an http(s) URL" })),
    { default: () => "https://discord.com/api/v10" }
  ),
  replyHosts: Schema.optional(ReplyHosts)
})

const AppSecret = Schema.Struct({ webhookSecret: Schema.optional(Schema.Redacted(Schema.String)) })

/** `providers`: `slack` and `discord` sections, and `{ webhookSecret }` for any other provider. */
interface Providers<App, Slack, Discord> {
  // TypeScript checks the `slack` / `discord` keys against the index signature too; neither section has a
  // `webhookSecret` (its schema refuses one)
  readonly [provider: string]: App | (Slack & App) | (Discord & App) | undefined
  readonly slack?: Slack & App
  readonly discord?: Discord & App
}

/**
 * @since 0.1.0
 * @category models
 */
export const ProvidersConfig = Schema.Struct(
  {
    slack: Schema.optional(SlackConfig),
    discord: Schema.optional(DiscordConfig)
  },
  Schema.Record({
    // `slack` and `discord` have sections of their own (above)
    key: Schema.String.pipe(Schema.filter((key) => key !== "slack" && key !== "discord")),
    value: AppSecret
  })
  // the inferred type intersects the index signature with the `slack` / `discord` keys, which TypeScript then reads
  // as `{ webhookSecret }` sections too: the same schema, with the type it has
) as unknown as Schema.Schema<
  Providers<typeof AppSecret.Type, typeof SlackConfig.Type, typeof DiscordConfig.Type>,
  Providers<typeof AppSecret.Encoded, typeof SlackConfig.Encoded, typeof DiscordConfig.Encoded>
>

/**
 * The `shed` section (docs/routing.md#shedding): `[{ "provider": P, "integrationId"?: N }]`, P a built-in provider. Always
 * in force, with the store's rules (`cellgate shed add|remove`).
 *
 * @since 0.2.0
 * @category models
 */
export const ShedConfig = Schema.Array(ShedRules.ruleFor(Providers.builtins().map((p) => p.name)))

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
  shed: Schema.optionalWith(ShedConfig, { default: () => [] }),
  /** Traces over OTLP/HTTP (`Telemetry.ts`); absent: no tracing, nothing loaded. */
  telemetry: Schema.optional(TelemetryConfig),
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

const unsetMessage = (variable: string) => `environment variable ${variable} is not set`
const UNSET = /^environment variable (\S+) is not set$/

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
            ? ParseResult.fail(new ParseResult.Type(ast, input, unsetMessage(input.env)))
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

/**
 * Drops the "Expected undefined" alternatives of optional keys; merges the alternatives of one path; says of an
 * unknown key which known key was probably meant (the keys of the schema itself, `ConfigKeys`).
 */
const readableIssues = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>) => {
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    if (issue.message.startsWith("Expected undefined")) continue
    const misspelt = ConfigKeys.misspeltOpenKey(ConfigFile.ast, issue.path)
    const path = formatPath(misspelt?.path ?? issue.path)
    const message = misspelt !== undefined
      ? misspelt.message
      : issue._tag === "Unexpected" && issue.path.length > 0
      ? ConfigKeys.unknownKeyMessage(
        String(issue.path[issue.path.length - 1]),
        ConfigKeys.knownKeysAt(ConfigFile.ast, issue.path.slice(0, -1)).keys
      )
      : issue.message
    const list = byPath.get(path) ?? []
    if (!list.includes(message)) list.push(message)
    byPath.set(path, list)
  }
  return Array.from(byPath, ([path, messages]) => ({
    path,
    message: messages.length === 1 ? messages[0]! : messages.join("; or ")
  }))
}

/**
 * The keys the configuration file knows at `path` (`["server"]`: `host`, `port`, …), read from the schema; `open`
 * when the object takes any key (the provider names of `providers`).
 *
 * @since 0.2.0
 * @category utils
 */
export const knownKeys = (path: ReadonlyArray<PropertyKey>): ConfigKeys.KnownKeys =>
  ConfigKeys.knownKeysAt(ConfigFile.ast, path)

/**
 * A `{ "env": "NAME" }` secret left out because its variable is unset (`decodeForReading`).
 *
 * @since 0.2.0
 * @category models
 */
export interface UnsetSecret {
  /** The field, `providers.github.webhookSecret`. */
  readonly path: string
  readonly variable: string
}

type Env = Readonly<Record<string, string | undefined>>

const decodeRaw = (raw: unknown, file: string, env: Env | undefined): Either.Either<Config, ConfigError> => {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return Either.left(new ConfigError({ file, issues: [{ path: "", message: "the configuration is a JSON object" }] }))
  }
  // a key the schema does not know is an error (`server.prot`), never a silent default
  const decoded = Schema.decodeUnknown(ConfigFile, { errors: "all", onExcessProperty: "error" })(raw)
  return Effect.runSync(Effect.either(
    env === undefined ? decoded : Effect.provideService(decoded, SecretEnvironment, env)
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
 * Decodes a parsed configuration file (`ConfigFile`: secrets resolved from `env`, default `process.env`). Every
 * key must be one the schema knows.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (
  raw: unknown,
  options: { readonly file?: string; readonly env?: Env } = {}
): Either.Either<Config, ConfigError> => decodeRaw(raw, options.file ?? "<config>", options.env)

const withoutPath = (raw: unknown, path: ReadonlyArray<string>): unknown => {
  const copy = structuredClone(raw)
  let parent: unknown = copy
  for (const key of path.slice(0, -1)) parent = (parent as Record<string, unknown> | undefined)?.[key]
  if (typeof parent === "object" && parent !== null) delete (parent as Record<string, unknown>)[path[path.length - 1]!]
  return copy
}

/**
 * `decode` for the commands that only read (`mailboxes`, `dead-letters list`, `explain`): an optional
 * `{ "env" }` secret whose variable is unset is left out and listed in `unset` (a warning, not an error), so a
 * backlog can be looked at without the production secrets. A secret the command needs (the store's URL) is still
 * an error, as is every other problem.
 *
 * @since 0.2.0
 * @category constructors
 */
export const decodeForReading = (
  raw: unknown,
  options: { readonly file?: string; readonly env?: Env } = {}
): Either.Either<{ readonly config: Config; readonly unset: ReadonlyArray<UnsetSecret> }, ConfigError> => {
  const file = options.file ?? "<config>"
  const strict = decodeRaw(raw, file, options.env)
  if (Either.isRight(strict)) return Either.right({ config: strict.right, unset: [] })
  const unset: Array<UnsetSecret> = []
  for (const issue of strict.left.issues) {
    const variable = UNSET.exec(issue.message)?.[1]
    if (variable === undefined || issue.path === "") return Either.left(strict.left)
    unset.push({ path: issue.path, variable })
  }
  const lenient = unset.reduce((r, u) => withoutPath(r, u.path.split(".")), raw)
  const retried = decodeRaw(lenient, file, options.env)
  // a secret that cannot be left out (the store's URL) is reported as unset
  return Either.isRight(retried) ? Either.right({ config: retried.right, unset }) : Either.left(strict.left)
}

const readFile = (file: string): Either.Either<unknown, ConfigError> => {
  let text: string
  try {
    text = Fs.readFileSync(file, "utf8")
  } catch (error) {
    const code = (error as { code?: string }).code ?? "unreadable"
    return Either.left(new ConfigError({ file, issues: [{ path: "", message: `cannot read the file (${code})` }] }))
  }
  try {
    return Either.right(JSON.parse(text))
  } catch (error) {
    return Either.left(
      new ConfigError({ file, issues: [{ path: "", message: `not valid JSON: ${(error as Error).message}` }] })
    )
  }
}

/**
 * Reads and decodes the configuration file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (file: string, env: Env = process.env): Effect.Effect<Config, ConfigError> =>
  Effect.suspend(() => Either.flatMap(readFile(file), (raw) => decode(raw, { file, env })))

/**
 * Reads and decodes the configuration file for a command that only reads (`decodeForReading`): an unset optional
 * secret is logged as a warning naming the field and the variable, never an error.
 *
 * @since 0.2.0
 * @category constructors
 */
export const loadForReading = (
  file: string,
  env: Env = process.env
): Effect.Effect<{ readonly config: Config; readonly unset: ReadonlyArray<UnsetSecret> }, ConfigError> =>
  Effect.suspend(() => Either.flatMap(readFile(file), (raw) => decodeForReading(raw, { file, env }))).pipe(
    Effect.tap(({ unset }) =>
      Effect.forEach(unset, (u) =>
        Effect.logWarning("secret not set: left out (this command only reads)").pipe(
          // `key`, not `secret`: a field named `secret` is blanked by the log redactor
          Effect.annotateLogs({ key: u.path, variable: u.variable })
        ), { discard: true })
    )
  )

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
