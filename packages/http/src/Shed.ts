/**
 * `cellgate shed list|add|remove` (docs/routing.md#shedding): the store's shed rules, and the rules in force (the
 * configuration's `shed` plus the store's) that `serve` and `explain` apply.
 *
 * @since 0.2.0
 */
import type { StoreUnavailable } from "@cellgate/core"
import { Providers, ShedRules } from "@cellgate/core"
import type { Layer } from "effect"
import { Data, Effect, Either, Schema } from "effect"
import type { Config } from "./Config.js"
import type { StoreNotSupported } from "./Stores.js"
import { storeLayer } from "./Stores.js"

/**
 * A shed command used wrongly (exit 2): an unknown provider, a bad integration id, a memory store, a config rule
 * given to `remove`.
 *
 * @since 0.2.0
 * @category errors
 */
export class ShedUsageError extends Data.TaggedError("ShedUsageError")<{ readonly message: string }> {}

/**
 * `shed remove` of a rule the store does not hold (exit 1).
 *
 * @since 0.2.0
 * @category errors
 */
export class ShedRuleNotFound extends Data.TaggedError("ShedRuleNotFound")<{ readonly message: string }> {}

/**
 * The providers a rule may name: the built-in registry's (the one `cellgate serve` runs).
 *
 * @since 0.2.0
 * @category utils
 */
export const knownProviders = (): ReadonlyArray<string> => Providers.builtins().map((p) => p.name)

/**
 * How a rule reads in messages: `github` or `github integration 12`.
 *
 * @since 0.2.0
 * @category utils
 */
export const describe = (rule: ShedRules.Rule): string =>
  rule.integrationId === undefined ? rule.provider : `${rule.provider} integration ${rule.integrationId}`

/**
 * A rule from the command line's `--provider` and `--integration`, checked as the configuration's are
 * (`ShedRules.ruleFor`: a known provider, a positive integration id).
 *
 * @since 0.2.0
 * @category constructors
 */
export const parseRule = (
  provider: string,
  integration: number | undefined
): Either.Either<ShedRules.Rule, ShedUsageError> =>
  Schema.decodeUnknownEither(ShedRules.ruleFor(knownProviders()))(
    integration === undefined ? { provider } : { provider, integrationId: integration }
  ).pipe(
    Either.mapLeft((error) =>
      new ShedUsageError({
        message: error.message.includes("integrationId")
          ? `--integration ${integration}: an integration id is a positive integer`
          : `--provider ${JSON.stringify(provider)}: unknown provider (known: ${knownProviders().join(", ")})`
      })
    )
  )

/**
 * The rules in force for a gateway built on this configuration: its `shed` section plus the store's rules, read
 * again every second (`ShedRules.layerInForce`).
 *
 * @since 0.2.0
 * @category layers
 */
export const inForceLayer = (config: Config): Layer.Layer<ShedRules.InForce, never, ShedRules.ShedRules> =>
  ShedRules.layerInForce(config.shed)

const withStore = <A, E>(
  config: Config,
  f: (store: ShedRules.ShedRules["Type"]) => Effect.Effect<A, E>
): Effect.Effect<A, E | StoreUnavailable | StoreNotSupported> =>
  Effect.flatMap(ShedRules.ShedRules, f).pipe(Effect.provide(storeLayer(config.store)))

/**
 * The rules in force: the configuration's, then the store's, each with its source.
 *
 * @since 0.2.0
 * @category commands
 */
export const list = (config: Config) =>
  withStore(config, (store) => Effect.map(store.list, (rules) => ShedRules.merge(config.shed, rules)))

const storeOnly = (config: Config): Effect.Effect<void, ShedUsageError> =>
  config.store.kind === "memory"
    ? Effect.fail(
      new ShedUsageError({
        message: "a memory store lives inside `cellgate serve`: shed it with the file's `shed` section and a restart"
      })
    )
    : Effect.void

/**
 * Adds a store rule; `false` when the store already had it.
 *
 * @since 0.2.0
 * @category commands
 */
export const add = (config: Config, rule: ShedRules.Rule) =>
  Effect.zipRight(storeOnly(config), withStore(config, (store) => store.add(rule)))

/**
 * Removes a store rule. A rule that only the configuration has is a usage error (edit the file); one that neither
 * has is `ShedRuleNotFound`.
 *
 * @since 0.2.0
 * @category commands
 */
export const remove = (config: Config, rule: ShedRules.Rule) =>
  Effect.zipRight(
    storeOnly(config),
    withStore(config, (store) =>
      Effect.flatMap(store.remove(rule), (removed): Effect.Effect<void, ShedUsageError | ShedRuleNotFound> => {
        if (removed) {
          return Effect.void
        }
        const k = ShedRules.key(rule)
        return config.shed.some((r) =>
            ShedRules.key(r) === k
          )
          ? Effect.fail(
            new ShedUsageError({
              message: `${describe(rule)} is a rule of the configuration's shed section: remove it there (and ` +
                "restart); shed remove removes store rules only"
            })
          )
          : Effect.fail(new ShedRuleNotFound({ message: `no store rule ${describe(rule)}` }))
      }))
  )
