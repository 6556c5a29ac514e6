/**
 * The `cellgate` command line (docs/interfaces.md): `serve`, `worker`, `explain`, `mailboxes`, `dead-letters list`,
 * `dead-letters replay`, `token jira-server`. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
 *
 * @since 0.1.0
 */
import * as Memory from "@cellgate/adapters/Memory"
import type { RouteOutcome, WebhookRequest } from "@cellgate/core"
import {
  Gateway as GatewayService,
  jiraServerToken,
  Outbox,
  Providers,
  Redaction,
  RegionClient,
  VolumeGate
} from "@cellgate/core"
import { Args, Command, Options, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Data, Effect, Exit, Layer, Option } from "effect"
import * as Fs from "node:fs"
import type { Config } from "./Config.js"
import * as ConfigFile from "./Config.js"
import { ConfigError } from "./Config.js"
import * as Demo from "./Demo.js"
import * as CliFront from "./internal/CliFront.js"
import * as Logging from "./Logging.js"
import * as Shed from "./Shed.js"
import * as Standalone from "./Standalone.js"
import { providerSecretsLayer, regionClientLayer, storeLayer, StoreNotSupported } from "./Stores.js"
import * as Worker from "./Worker.js"

/**
 * A command used wrongly (exit 2), e.g. `worker` on a SQLite store.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const stderrSink = Logging.makeSink((line) => {
  process.stderr.write(line + "\n")
})

/** Prints a line of output through core's structural redactor: no token or JWT of a path reaches the terminal. */
const println = (line: string) =>
  Effect.sync(() => {
    process.stdout.write(Redaction.redactText(line) + "\n")
  })

/** Prints what the user asked to see in clear (a token they mint), and nothing else. */
const printSecret = (line: string) =>
  Effect.sync(() => {
    process.stdout.write(line + "\n")
  })

const configOption = Options.file("config", { exists: "yes" }).pipe(
  Options.withDescription("the configuration file (JSON)")
)
const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON instead of a table"))

const loadConfig = (file: string) => ConfigFile.load(file)
/** For the commands that only read: an unset `{ "env" }` secret they do not need is a warning (logged). */
const loadForReading = (file: string) => ConfigFile.loadForReading(file)

// serve -------------------------------------------------------------------------------------------------------

const serve = Command.make("serve", {
  config: configOption,
  port: Options.integer("port").pipe(Options.optional, Options.withDescription("overrides server.port; 0: any")),
  noWorker: Options.boolean("no-worker").pipe(Options.withDescription("do not run the delivery worker")),
  demo: Options.boolean("demo").pipe(Options.withDescription("start local region stubs and print a ready curl"))
}, ({ config: file, demo, noWorker, port }) =>
  Effect.gen(function*() {
    const sink = yield* Logging.stdoutSink
    return yield* Effect.gen(function*() {
      const config = yield* loadConfig(file)
      sink.hold()
      return yield* Effect.scoped(Effect.gen(function*() {
        if (demo) yield* Demo.startRegionStubs(config)
        const running = yield* Standalone.start(config, {
          worker: !noWorker,
          ...(Option.isSome(port) ? { port: port.value } : {})
        })
        yield* println(`cellgate listening on ${running.url}`)
        if (demo) yield* Demo.printCurl(config, running.url)
        sink.release()
        if (config.store.kind === "memory") {
          yield* Effect.logWarning(
            "memory store: acknowledged webhooks live only in this process and are lost when it stops"
          )
        }
        // docs/routing.md#slack: never routed unverified, so without its key a provider answers 401 to everything
        if (config.providers.slack?.signingSecret === undefined) {
          yield* Effect.logWarning("slack: no signing secret configured: every Slack webhook answers 401").pipe(
            Effect.annotateLogs({ provider: "slack", key: "providers.slack.signingSecret" })
          )
        }
        if (config.providers.discord?.publicKey === undefined) {
          yield* Effect.logWarning("discord: no public key configured: every Discord interaction answers 401").pipe(
            Effect.annotateLogs({ provider: "discord", key: "providers.discord.publicKey" })
          )
        }
        yield* Effect.logInfo("listening").pipe(Effect.annotateLogs({ url: running.url, worker: !noWorker }))
        yield* Effect.addFinalizer(() => Effect.logInfo("shutting down"))
        return yield* Effect.never
      })).pipe(Effect.ensuring(Effect.sync(() => sink.release())))
    }).pipe(Effect.provide(Logging.layer(sink)))
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("run the gateway (and the delivery worker unless --no-worker)")
  )

// worker ------------------------------------------------------------------------------------------------------

const worker = Command.make("worker", {
  config: configOption,
  metricsPort: Options.integer("metrics-port").pipe(
    Options.optional,
    Options.withDescription("serve /healthz, /readyz and /metrics on this port (0: any)")
  )
}, ({ config: file, metricsPort }) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(file)
    if (config.store.kind !== "postgres") {
      return yield* new UsageError({
        message: config.store.kind === "sqlite"
          ? "cellgate worker needs a PostgreSQL store: SQLite is single-process, so use the worker built into " +
            "`cellgate serve` (or switch the store to postgres)"
          : "cellgate worker needs a PostgreSQL store: a memory store lives inside `cellgate serve`"
      })
    }
    return yield* Worker.main(config, { metricsPort: Option.getOrUndefined(metricsPort), announce: println }).pipe(
      Effect.provide(Layer.provideMerge(regionClientLayer, storeLayer(config.store)))
    )
  }).pipe(Effect.provide(Logging.layerStdout))).pipe(
    Command.withDescription("run only the delivery worker (PostgreSQL store)")
  )

// explain -----------------------------------------------------------------------------------------------------

/** `route` sends nothing: a region client that is never called. */
const noRegionClient = Layer.succeed(
  RegionClient.RegionClient,
  RegionClient.RegionClient.of({ send: () => Effect.dieMessage("explain sends nothing") })
)

/**
 * The `Gateway.Gateway` `explain` routes with (`route` only): core's `Gateway.layer` over the configuration's
 * `directory` when it has one (what `serve` would import, with an empty memory outbox that `route` never writes),
 * else the store's; a volume gate that counts nothing (`VolumeGate.layerNoop`); a region client that is never called;
 * no control side.
 *
 * @since 0.1.0
 * @category explain
 */
export const explainLayer = (config: Config) => {
  const store = config.directory !== undefined
    ? Layer.merge(Memory.directoryLayer(config.directory), Memory.outboxLayer)
    : storeLayer(config.store)
  // the shed rules in force: the file's, plus the store's when explain reads the store (no `directory` section)
  const directory = Layer.provideMerge(Shed.inForceLayer(config), store)
  return GatewayService.layer.pipe(
    Layer.provide(
      Layer.mergeAll(directory, VolumeGate.layerNoop, noRegionClient, providerSecretsLayer(config), Providers.layer())
    )
  )
}

/**
 * The JSON `explain` prints for an outcome.
 *
 * @since 0.1.0
 * @category explain
 */
export const explainJson = (outcome: RouteOutcome) => {
  const { _tag, ...rest } = outcome.decision as { _tag: string } & Record<string, unknown>
  return {
    decision: { _tag, ...rest },
    reason: outcome.reason,
    provider: outcome.provider,
    integration: outcome.integration === null
      ? null
      : {
        id: outcome.integration.id,
        provider: outcome.integration.provider,
        externalId: outcome.integration.externalId
      },
    organizations: outcome.organizations,
    regions: outcome.regions
  }
}

/**
 * The unset secret (left out by `loadForReading`) that the outcome's provider or integration would have been
 * verified with: `providers.<provider>.…`, or `directory.integrations.<i>.metadata.…` of the outcome's integration.
 */
const unverifiedBecauseUnset = (
  config: Config,
  unset: ReadonlyArray<ConfigFile.UnsetSecret>,
  outcome: RouteOutcome
): string | undefined =>
  unset.find((u) => {
    if (outcome.provider !== null && u.path.startsWith(`providers.${outcome.provider}.`)) return true
    const index = /^directory\.integrations\.(\d+)\.metadata\./.exec(u.path)?.[1]
    return index !== undefined && outcome.integration !== null &&
      config.directory?.integrations[Number(index)]?.id === outcome.integration.id
  })?.path

const parseHeader = (h: string): Effect.Effect<readonly [string, string], UsageError> => {
  const i = h.indexOf(":")
  if (i <= 0) return Effect.fail(new UsageError({ message: `--header ${JSON.stringify(h)}: expected name:value` }))
  return Effect.succeed([h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim()] as const)
}

const explain = Command.make("explain", {
  config: configOption,
  method: Options.text("method").pipe(Options.withDescription("the HTTP method")),
  path: Options.text("path").pipe(Options.withDescription("the full path with query")),
  header: Options.text("header").pipe(Options.repeated, Options.withDescription("a header, name:value")),
  bodyFile: Options.file("body-file", { exists: "yes" }).pipe(Options.optional)
}, ({ bodyFile, config: file, header, method, path }) =>
  Effect.gen(function*() {
    const { config, unset } = yield* loadForReading(file)
    const headers: Record<string, string> = {}
    for (const h of header) {
      const [k, v] = yield* parseHeader(h)
      if (!k.startsWith("x-cellgate-")) headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`
    }
    const body = Option.isSome(bodyFile) ? new Uint8Array(Fs.readFileSync(bodyFile.value)) : new Uint8Array(0)
    const request: WebhookRequest = {
      method: method.toUpperCase(),
      path: path.startsWith("/") ? path : `/${path}`,
      headers,
      body,
      receivedAt: Date.now()
    }
    const outcome = yield* Effect.flatMap(GatewayService.Gateway, (gateway) => gateway.route(request)).pipe(
      Effect.provide(explainLayer(config))
    )
    const skipped = unverifiedBecauseUnset(config, unset, outcome)
    yield* println(JSON.stringify({
      ...explainJson(outcome),
      ...(skipped === undefined ? {} : { verified: `skipped (${skipped} unset)` })
    }))
  }).pipe(Effect.provide(Logging.layer(stderrSink)))).pipe(
    Command.withDescription("show how a request would be routed, without side effects")
  )

// mailboxes / dead-letters -----------------------------------------------------------------------------------

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n")
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** Runs `f` on the configuration's store; logs go to stderr. */
const withOutbox = <A, E>(
  file: string,
  f: (outbox: Outbox.Outbox["Type"]) => Effect.Effect<A, E>,
  load: (file: string) => Effect.Effect<Config, ConfigError> = loadConfig
) =>
  Effect.gen(function*() {
    const config = yield* load(file)
    return yield* Effect.flatMap(Outbox.Outbox, f).pipe(Effect.provide(storeLayer(config.store)))
  }).pipe(Effect.provide(Logging.layer(stderrSink)))

const readingOnly = (file: string) => Effect.map(loadForReading(file), (read) => read.config)

const mailboxes = Command.make(
  "mailboxes",
  { config: configOption, json: jsonOption },
  ({ config: file, json }) =>
    withOutbox(file, (outbox) =>
      Effect.gen(function*() {
        const now = Date.now()
        const rows = (yield* outbox.mailboxes).map((m) => ({
          mailbox: m.mailbox,
          region: m.region,
          tenant: m.tenant,
          depth: m.depth,
          oldestAgeMs: m.oldestReceivedAt === null ? null : Math.max(0, now - m.oldestReceivedAt),
          nextAttemptAt: iso(m.nextAttemptAt),
          leasedBy: m.leaseUntil !== null && m.leaseUntil > now ? m.leasedBy : null
        }))
        if (json) return yield* println(JSON.stringify(rows))
        yield* println(table([
          ["MAILBOX", "REGION", "TENANT", "DEPTH", "OLDEST AGE (s)", "NEXT ATTEMPT", "LEASED BY"],
          ...rows.map((r) => [
            r.mailbox,
            r.region,
            r.tenant,
            String(r.depth),
            r.oldestAgeMs === null ? "-" : (r.oldestAgeMs / 1000).toFixed(1),
            r.nextAttemptAt ?? "-",
            r.leasedBy ?? "-"
          ])
        ]))
      }), readingOnly)
).pipe(Command.withDescription("the outbox backlog, per mailbox"))

const deadLettersList = Command.make(
  "list",
  { config: configOption, json: jsonOption },
  ({ config: file, json }) =>
    withOutbox(file, (outbox) =>
      Effect.gen(function*() {
        const rows = (yield* outbox.deadLetters).map((d) => ({
          id: d.id,
          mailbox: d.mailbox,
          region: d.region,
          reason: d.reason,
          lastStatus: d.lastStatus,
          deadAt: iso(d.deadAt)
        }))
        if (json) return yield* println(JSON.stringify(rows))
        yield* println(table([
          ["ID", "MAILBOX", "REGION", "REASON", "LAST STATUS", "DEAD AT"],
          ...rows.map((r) => [
            String(r.id),
            r.mailbox,
            r.region,
            r.reason,
            r.lastStatus === null ? "-" : String(r.lastStatus),
            r.deadAt ?? "-"
          ])
        ]))
      }), readingOnly)
).pipe(Command.withDescription("the dead letters"))

const deadLettersReplay = Command.make("replay", {
  config: configOption,
  all: Options.boolean("all").pipe(Options.withDescription("replay every dead letter")),
  ids: Args.integer({ name: "ID" }).pipe(Args.repeated)
}, ({ all, config: file, ids }) =>
  Effect.gen(function*() {
    if (all === (ids.length > 0)) {
      return yield* new UsageError({ message: "give either --all or one or more dead-letter IDs" })
    }
    const count = yield* withOutbox(file, (outbox) => outbox.replay(all ? "all" : ids, Date.now()))
    yield* println(String(count))
  })).pipe(Command.withDescription("move dead letters back to the tail of their mailboxes; prints the count"))

const deadLetters = Command.make("dead-letters").pipe(
  Command.withSubcommands([deadLettersList, deadLettersReplay]),
  Command.withDescription("inspect and replay dead letters")
)

// shed --------------------------------------------------------------------------------------------------------

const shedRuleOptions = {
  config: configOption,
  provider: Options.text("provider").pipe(Options.withDescription("the provider (github, jira_server, plugins…)")),
  integration: Options.integer("integration").pipe(
    Options.optional,
    Options.withDescription("only this integration (its id); absent: every webhook of the provider")
  )
}

const shedList = Command.make(
  "list",
  { config: configOption, json: jsonOption },
  ({ config: file, json }) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(file)
      const rows = (yield* Shed.list(config)).map(({ rule, source }) => ({
        provider: rule.provider,
        integrationId: rule.integrationId ?? null,
        source
      }))
      if (json) return yield* println(JSON.stringify(rows))
      yield* println(table([
        ["PROVIDER", "INTEGRATION", "SOURCE"],
        ...rows.map((r) => [r.provider, r.integrationId === null ? "*" : String(r.integrationId), r.source])
      ]))
    }).pipe(Effect.provide(Logging.layer(stderrSink)))
).pipe(
  Command.withDescription("the shed rules in force, each marked config or store")
)

const shedAdd = Command.make(
  "add",
  shedRuleOptions,
  ({ config: file, integration, provider }) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(file)
      const rule = yield* Shed.parseRule(provider, Option.getOrUndefined(integration))
      const added = yield* Shed.add(config, rule)
      yield* println(
        added
          ? `shedding ${Shed.describe(rule)} (running gateways apply it within 5 s)`
          : `${Shed.describe(rule)} was already shed by the store`
      )
    }).pipe(Effect.provide(Logging.layer(stderrSink)))
).pipe(
  Command.withDescription("shed webhooks of a provider (or one integration): 429, nothing stored")
)

const shedRemove = Command.make(
  "remove",
  shedRuleOptions,
  ({ config: file, integration, provider }) =>
    Effect.gen(function*() {
      const config = yield* loadConfig(file)
      const rule = yield* Shed.parseRule(provider, Option.getOrUndefined(integration))
      yield* Shed.remove(config, rule)
      yield* println(`no longer shedding ${Shed.describe(rule)} (running gateways apply it within 5 s)`)
    }).pipe(Effect.provide(Logging.layer(stderrSink)))
).pipe(
  Command.withDescription("remove a store shed rule (a config rule goes with an edit of the file)")
)

const shed = Command.make("shed").pipe(
  Command.withSubcommands([shedList, shedAdd, shedRemove]),
  Command.withDescription("shed the webhooks of a noisy provider or integration (incident control)")
)

// token -------------------------------------------------------------------------------------------------------

const readStdin: Effect.Effect<string, UsageError> = Effect.async((resume) => {
  if (process.stdin.isTTY) {
    resume(Effect.fail(new UsageError({ message: "set CELLGATE_SECRET or pipe the secret on stdin" })))
    return
  }
  const chunks: Array<Buffer> = []
  const onData = (c: Buffer) => chunks.push(c)
  const onEnd = () => {
    cleanup()
    resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
  }
  const onError = (e: Error) => {
    cleanup()
    resume(Effect.fail(new UsageError({ message: `cannot read the secret from stdin: ${e.message}` })))
  }
  const cleanup = () => {
    process.stdin.off("data", onData).off("end", onEnd).off("error", onError)
    process.stdin.pause()
  }
  process.stdin.on("data", onData).on("end", onEnd).on("error", onError)
})

const jiraServer = Command.make("jira-server", {
  externalId: Options.text("external-id").pipe(Options.withDescription("the integration's externalId"))
}, ({ externalId }) =>
  Effect.gen(function*() {
    const fromEnv = process.env.CELLGATE_SECRET
    const secret = (fromEnv !== undefined && fromEnv !== "" ? fromEnv : yield* readStdin).replace(/\r?\n$/, "")
    if (secret === "") return yield* new UsageError({ message: "the secret is empty" })
    const token = yield* Effect.promise(() => jiraServerToken(externalId, secret))
    yield* printSecret(token)
  })).pipe(
    Command.withDescription(
      "mint the Jira Server webhook token; the secret comes from CELLGATE_SECRET or stdin, never argv"
    )
  )

const token = Command.make("token").pipe(
  Command.withSubcommands([jiraServer]),
  Command.withDescription("mint provider tokens")
)

// the app -----------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("cellgate").pipe(
  Command.withSubcommands([serve, worker, explain, mailboxes, deadLetters, shed, token]),
  Command.withDescription("a multi-region webhook gateway")
)

/**
 * @since 0.1.0
 * @category commands
 */
export const cli = Command.run(command, { name: "cellgate", version: "0.1.0" })
const app = { name: "cellgate", version: "0.1.0" }

/**
 * The exit code of a finished run: 0 ok (or interrupted by a signal), 2 usage or configuration error, 1 otherwise.
 *
 * @since 0.1.0
 * @category running
 */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (
      ValidationError.isValidationError(e) || e instanceof ConfigError || e instanceof UsageError ||
      e instanceof Shed.ShedUsageError
    ) return 2
  }
  return 1
}

const report = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (ValidationError.isValidationError(e)) return // @effect/cli printed it
    if (e instanceof ConfigError || e instanceof UsageError || e instanceof StoreNotSupported) {
      process.stderr.write(`cellgate: ${Redaction.redactText(e.message)}\n`)
      return
    }
    if (typeof e === "object" && e !== null && "message" in e) {
      process.stderr.write(`cellgate: ${Redaction.redactText(String((e as { message: unknown }).message))}\n`)
      return
    }
  }
  process.stderr.write(`cellgate: ${Redaction.redactText(Cause.pretty(exit.cause))}\n`)
}

/**
 * Runs the CLI on `process.argv` and exits with docs/interfaces.md's codes.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string> = process.argv): void => {
  // help naming the program, a group's own subcommands, no colour off a terminal (internal/CliFront.ts)
  const early = CliFront.preflight(command, argv.slice(2), app)
  if (early !== undefined) {
    const stream = early.stream === "stdout" ? process.stdout : process.stderr
    stream.write(CliFront.forStream(early.text, stream) + "\n")
    process.exitCode = early.code
    return
  }
  NodeRuntime.runMain(CliFront.withConsole(cli(argv)).pipe(Effect.provide(NodeContext.layer)), {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      report(exit)
      const code = exitCode(exit)
      process.exitCode = code
      onExit(code)
    }
  })
}
