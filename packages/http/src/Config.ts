/**
 * The configuration file of INTERFACES.md as a `Schema`: every key optional with its default, secrets written
 * `{ "env": "NAME" }` resolved from the environment, the `directory` section decoded with core's `Directory`.
 *
 * @since 0.1.0
 */
import { Delivery, Directory } from "@cellgate/core"
import type { Redacted } from "effect"
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import * as Fs from "node:fs"

/**
 * @since 0.1.0
 * @category models
 */
export const ServerConfig = Schema.Struct({
  host: Schema.optionalWith(Schema.String, { default: () => "127.0.0.1" }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 8080 }),
  maxBodyBytes: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 1_048_576 }),
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

const nonNegative = Schema.Number.pipe(Schema.nonNegative())
const positiveInt = Schema.Int.pipe(Schema.positive())

const deliveryDefaults = Delivery.defaultDeliveryConfig

/**
 * The `delivery` section (the worker's settings; defaults from core's `Delivery.defaultDeliveryConfig`).
 *
 * @since 0.1.0
 * @category models
 */
export const DeliveryConfig = Schema.Struct({
  pollIntervalMs: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.pollIntervalMs }),
  requestTimeoutMs: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.requestTimeoutMs }),
  maxAttempts: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.maxAttempts }),
  backoffBaseMs: Schema.optionalWith(nonNegative, { default: () => deliveryDefaults.backoffBaseMs }),
  backoffRate: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThanOrEqualTo(1)), {
    default: () => deliveryDefaults.backoffRate
  }),
  backoffMaxMs: Schema.optionalWith(nonNegative, { default: () => deliveryDefaults.backoffMaxMs }),
  jitter: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => deliveryDefaults.jitter }),
  retryAfterMaxMs: Schema.optionalWith(nonNegative, { default: () => deliveryDefaults.retryAfterMaxMs }),
  maxAgeMs: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.maxAgeMs }),
  skipOnFailureProviders: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => deliveryDefaults.skipOnFailureProviders
  }),
  concurrency: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.concurrency }),
  leaseMs: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.leaseMs }),
  claimBatch: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.claimBatch }),
  maxAnswerBytes: Schema.optionalWith(positiveInt, { default: () => deliveryDefaults.maxAnswerBytes })
})
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
 * The whole file. Secrets are already resolved here (see `load`).
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
  delivery: Schema.optionalWith(DeliveryConfig, { default: () => Schema.decodeSync(DeliveryConfig)({}) }),
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

type Json = unknown

const isObject = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * Replaces every `{ "env": "NAME" }` at a secret's place with the variable's value. Unset variables are issues
 * that name the field.
 *
 * @since 0.1.0
 * @category utils
 */
export const resolveSecrets = (
  raw: Json,
  env: Readonly<Record<string, string | undefined>>
): { readonly value: Json; readonly issues: ReadonlyArray<{ path: string; message: string }> } => {
  const issues: Array<{ path: string; message: string }> = []
  const resolve = (value: Json, path: string): Json => {
    if (!isObject(value) || !("env" in value)) return value
    const name = value.env
    const keys = Object.keys(value)
    if (typeof name !== "string" || name === "" || keys.length !== 1) {
      issues.push({ path, message: "a secret is a string or { \"env\": \"NAME\" }" })
      return value
    }
    const v = env[name]
    if (v === undefined || v === "") {
      issues.push({ path, message: `environment variable ${name} is not set` })
      return value
    }
    return v
  }
  const clone = (value: Json): Json => JSON.parse(JSON.stringify(value))
  if (!isObject(raw)) return { value: raw, issues }
  const out = clone(raw) as Record<string, Json>
  if (isObject(out.store) && "url" in out.store) out.store.url = resolve(out.store.url, "store.url")
  if (isObject(out.providers)) {
    for (const [name, p] of Object.entries(out.providers)) {
      if (isObject(p) && "webhookSecret" in p) {
        p.webhookSecret = resolve(p.webhookSecret, `providers.${name}.webhookSecret`)
      }
    }
  }
  const dir = out.directory
  if (isObject(dir)) {
    if (Array.isArray(dir.regions)) {
      dir.regions.forEach((r, i) => {
        if (isObject(r) && "secret" in r) r.secret = resolve(r.secret, `directory.regions.${i}.secret`)
      })
    }
    if (Array.isArray(dir.integrations)) {
      dir.integrations.forEach((it, i) => {
        if (!isObject(it) || !isObject(it.metadata)) return
        const m = it.metadata
        for (const key of ["webhookSecret", "sharedSecret"]) {
          if (key in m) m[key] = resolve(m[key], `directory.integrations.${i}.metadata.${key}`)
        }
      })
    }
  }
  return { value: out, issues }
}

const formatPath = (path: ReadonlyArray<PropertyKey>) => path.map(String).join(".")

/** Drops the "Expected undefined" alternatives of optional keys; merges literal alternatives of one path. */
const SECRET_KEYS = new Set(["secret", "webhookSecret", "sharedSecret", "signingSecret"])

/** Whether a field holds a secret (at or under it): an issue there never shows the value it got. */
const isSecretPath = (path: ReadonlyArray<PropertyKey>): boolean =>
  path.some((key) => SECRET_KEYS.has(String(key))) || (path[0] === "store" && path[1] === "url")

/** A message about a secret field with the value it got (Schema's `, actual …`) left out. */
const secretMessage = (message: string): string => {
  const cut = message.search(/,?\s*actual\b/)
  const kept = cut === -1 ? message : message.slice(0, cut)
  return `${kept} (a secret is a string or { "env": "NAME" }; the value is not shown)`
}

const readableIssues = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>) => {
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    if (issue.message.startsWith("Expected undefined")) continue
    const path = formatPath(issue.path)
    const message = isSecretPath(issue.path) ? secretMessage(issue.message) : issue.message
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
 * Decodes a parsed configuration (secrets resolved from `env`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (
  raw: unknown,
  options: { readonly file?: string; readonly env?: Readonly<Record<string, string | undefined>> } = {}
): Either.Either<Config, ConfigError> => {
  const file = options.file ?? "<config>"
  if (!isObject(raw)) {
    return Either.left(new ConfigError({ file, issues: [{ path: "", message: "the configuration is a JSON object" }] }))
  }
  const { issues, value } = resolveSecrets(raw, options.env ?? process.env)
  if (issues.length > 0) return Either.left(new ConfigError({ file, issues }))
  return Schema.decodeUnknownEither(Config, { errors: "all" })(value).pipe(
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
