/**
 * Shedding (docs/routing.md#shedding): the lever an on-call engineer pulls when one integration floods a region. A rule
 * `{ provider, integrationId? }` turns every `Enqueue` decision it matches into 429 `shed` with `Retry-After: 60`,
 * stored nowhere.
 *
 * The rules in force are the configuration's (`shed`) plus the store's (`ShedRules`, changed by `cellgate shed
 * add|remove`). A running gateway reads the store's every `refreshMs` (default 1 s), so a change reaches every
 * gateway of a fleet within a few seconds without a restart.
 *
 * How the rules reach `Gateway.layer`: through `InForce`, a `Context.Reference` whose default is "no rules". Its
 * requirement type is pinned (docs/interfaces.md: an application's composition keeps compiling) and the directory ports
 * an application implements keep their shapes, so neither a new requirement nor a new method on `RegionDirectory`
 * would do; an application that wants shedding provides `layerInForce` (as `cellgate serve` does), one that does
 * not gets a gateway that sheds nothing.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Schedule, Schema } from "effect"
import type { RouteOutcome } from "./Domain.js"
import { respond } from "./Domain.js"
import type { StoreUnavailable } from "./Errors.js"
import { IntegrationId } from "./Ids.js"

/**
 * The fields of a rule, shared by the configuration and the store. Unknown keys are refused.
 */
const fields = {
  provider: Schema.String.pipe(Schema.nonEmptyString({ message: () => "a shed rule names a provider" })),
  integrationId: Schema.optional(IntegrationId)
}

/**
 * A shed rule: every webhook of `provider` (and, with `integrationId`, of that integration only) that would be
 * stored is answered 429 instead. Keys other than these two are an error.
 *
 * @since 0.2.0
 * @category models
 */
export const Rule = Schema.Struct(fields).annotations({
  identifier: "ShedRule",
  parseOptions: { onExcessProperty: "error" }
})
/**
 * @since 0.2.0
 * @category models
 */
export type Rule = typeof Rule.Type

/**
 * `Rule` whose provider must be one `isKnown` accepts (the registry's names): a rule for a provider that does not
 * exist would shed nothing and hide a typo. The issue names the field (`shed.0.provider`).
 *
 * @since 0.2.0
 * @category models
 */
export const ruleFor = (known: ReadonlyArray<string>): Schema.Schema<Rule, typeof Rule.Encoded> =>
  Schema.Struct({
    ...fields,
    provider: fields.provider.pipe(
      Schema.filter((name) => known.includes(name), {
        message: (issue) => `unknown provider ${JSON.stringify(issue.actual)} (known: ${known.join(", ")})`
      })
    )
  }).annotations({ identifier: "ShedRule", parseOptions: { onExcessProperty: "error" } })

/**
 * The identity of a rule: `<provider>` or `<provider>:<integrationId>`.
 *
 * @since 0.2.0
 * @category models
 */
export const key = (rule: Rule): string =>
  rule.integrationId === undefined ? rule.provider : `${rule.provider}:${rule.integrationId}`

/**
 * Rules in a stable order: by provider, the provider-wide rule first, then by integration id.
 *
 * @since 0.2.0
 * @category models
 */
export const sort = (rules: ReadonlyArray<Rule>): Array<Rule> =>
  [...rules].sort((a, b) =>
    a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : (a.integrationId ?? 0) - (b.integrationId ?? 0)
  )

/**
 * The store's rules (the part `cellgate shed add|remove` changes). Every store provides it (memory, SQLite,
 * PostgreSQL: migration `0005_shed_rules`).
 *
 * @since 0.2.0
 * @category tags
 */
export class ShedRules extends Context.Tag("@cellgate/core/ShedRules")<ShedRules, {
  /** Every stored rule, sorted (`sort`). */
  readonly list: Effect.Effect<ReadonlyArray<Rule>, StoreUnavailable>
  /** Stores the rule; `false` when it was already there. */
  readonly add: (rule: Rule) => Effect.Effect<boolean, StoreUnavailable>
  /** Removes exactly that rule (a provider-wide rule is not an integration's); `false` when it was not there. */
  readonly remove: (rule: Rule) => Effect.Effect<boolean, StoreUnavailable>
}>() {}

/**
 * The store's rules in memory (one process).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory = (): ShedRules["Type"] => {
  const rules = new Map<string, Rule>()
  return ShedRules.of({
    list: Effect.sync(() => sort(Array.from(rules.values()))),
    add: (rule) =>
      Effect.sync(() => {
        const k = key(rule)
        if (rules.has(k)) return false
        rules.set(k, rule.integrationId === undefined ? { provider: rule.provider } : rule)
        return true
      }),
    remove: (rule) => Effect.sync(() => rules.delete(key(rule)))
  })
}

/**
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ShedRules> = Layer.sync(ShedRules, makeMemory)

/**
 * Where a rule in force comes from.
 *
 * @since 0.2.0
 * @category models
 */
export type Source = "config" | "store"

/**
 * The rules of both sources, each with its source (a rule in both is listed twice), config first.
 *
 * @since 0.2.0
 * @category models
 */
export const merge = (
  config: ReadonlyArray<Rule>,
  store: ReadonlyArray<Rule>
): ReadonlyArray<{ readonly rule: Rule; readonly source: Source }> => [
  ...sort(config).map((rule) => ({ rule, source: "config" as const })),
  ...sort(store).map((rule) => ({ rule, source: "store" as const }))
]

/**
 * The rules the gateway applies. The default sheds nothing.
 *
 * @since 0.2.0
 * @category tags
 */
export class InForce extends Context.Reference<InForce>()("@cellgate/core/ShedRules/InForce", {
  defaultValue: (): {
    /** Whether a webhook of `provider` (and integration) that would be stored is shed. */
    readonly matches: (provider: string, integrationId: number | undefined) => boolean
  } => ({ matches: () => false })
}) {}

const matcher = (rules: ReadonlyArray<Rule>): InForce["Type"]["matches"] => {
  if (rules.length === 0) return () => false
  const keys = new Set(rules.map(key))
  return (provider, integrationId) =>
    keys.has(provider) || (integrationId !== undefined && keys.has(`${provider}:${integrationId}`))
}

/**
 * Exactly `rules`, fixed (an application's own rules, tests).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFixed = (rules: ReadonlyArray<Rule>): Layer.Layer<InForce> =>
  Layer.succeed(InForce, { matches: matcher(rules) })

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** How often the store's rules are read again (default 1000 ms): a change shows within this time. */
  readonly refreshMs?: number
}

/**
 * The rules in force: `config` plus the store's (`ShedRules`), read when the layer is built and then every
 * `refreshMs` while its scope is open. A read that fails keeps the rules last read (the store is down: the
 * webhooks it would shed fail to be stored anyway) and is logged once, until a read succeeds again.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerInForce = (
  config: ReadonlyArray<Rule>,
  options: Options = {}
): Layer.Layer<InForce, never, ShedRules> =>
  Layer.scoped(
    InForce,
    Effect.gen(function*() {
      const store = yield* ShedRules
      let current = matcher(config)
      let failing = false
      const refresh = store.list.pipe(
        Effect.tap((rules) =>
          Effect.suspend(() => {
            current = matcher([...config, ...rules])
            const recovered = failing
            failing = false
            return recovered ? Effect.logInfo("shed rules: the store can be read again") : Effect.void
          })
        ),
        Effect.catchAll((error) =>
          Effect.suspend(() => {
            if (failing) return Effect.void
            failing = true
            return Effect.logWarning("shed rules: cannot read the store's rules; keeping the last read").pipe(
              Effect.annotateLogs({ error: error.message })
            )
          })
        ),
        Effect.asVoid
      )
      yield* refresh
      yield* Effect.forkScoped(
        Effect.repeat(refresh, Schedule.spaced(Math.max(50, options.refreshMs ?? 1_000)))
      )
      return { matches: (provider, integrationId) => current(provider, integrationId) }
    })
  )

/**
 * The reason of a shed outcome (its `Respond` decision and `RouteOutcome.reason`).
 *
 * @since 0.2.0
 * @category constants
 */
export const REASON = "shed"

/**
 * `outcome` with a matching `Enqueue` decision turned into `Respond` 429 `shed` (`Retry-After: 60`, body
 * `{"error":"shed","message"}`); any other outcome as it is.
 *
 * @since 0.2.0
 * @category routing
 */
export const apply = (outcome: RouteOutcome, inForce: InForce["Type"]): RouteOutcome => {
  const d = outcome.decision
  if (d._tag !== "Enqueue" || !inForce.matches(d.provider, d.integrationId)) return outcome
  const body = JSON.stringify({
    error: REASON,
    message: "webhooks of this integration are being shed by the operator; retry later"
  })
  return {
    ...outcome,
    decision: respond(429, REASON, body, { "content-type": "application/json", "retry-after": "60" }),
    reason: REASON
  }
}

/**
 * Whether `apply` shed this outcome.
 *
 * @since 0.2.0
 * @category routing
 */
export const isShed = (outcome: RouteOutcome): boolean =>
  outcome.decision._tag === "Respond" && outcome.decision.status === 429 && outcome.reason === REASON
