/**
 * Assembling the gateway from a configuration: store, services, directory import, HTTP server, delivery worker.
 * `start` is the scoped Effect the CLI runs; `makeServer` is the Promise API for embedding.
 *
 * @since 0.1.0
 */
import type { ControlHandler, Provider, ProviderRegistry, RegionClient, StoreUnavailable } from "@cellgate/core"
import { DirectoryStore, Gateway } from "@cellgate/core"
import type { Scope } from "effect"
import type { Context } from "effect"
import { Effect, Either, Exit, Layer, Scope as ScopeModule } from "effect"
import type { Config, ConfigInput } from "./Config.js"
import { decode as decodeConfig } from "./Config.js"
import * as Logging from "./Logging.js"
import type { ListenError, RunningServer } from "./Server.js"
import * as Server from "./Server.js"
import * as Shed from "./Shed.js"
import type { GatewayOverrides, StoreNotSupported, StoreServices } from "./Stores.js"
import { gatewayLayer, storeLayer } from "./Stores.js"
import type { TelemetryUnavailable } from "./Telemetry.js"
import * as Telemetry from "./Telemetry.js"
import * as Worker from "./Worker.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface StartOptions extends GatewayOverrides {
  /** Overrides `server.port` (`--port`; 0 picks a free port). */
  readonly port?: number
  /** Run the delivery worker in this process (default true; `--no-worker` turns it off). */
  readonly worker?: boolean
  /** Replaces the store of the configuration (tests: a failing outbox). */
  readonly store?: Layer.Layer<StoreServices, StoreUnavailable | StoreNotSupported>
  readonly shutdownGraceMs?: number
}

/**
 * A started gateway: the server and the services it runs on.
 *
 * @since 0.1.0
 * @category models
 */
export interface Instance extends RunningServer {
  readonly context: Context.Context<GatewayServices>
}

/**
 * @since 0.1.0
 * @category models
 */
export type GatewayServices =
  | Gateway.Gateway
  | StoreServices
  | ProviderRegistry.ProviderRegistry
  | Provider.ProviderSecrets
  | RegionClient.RegionClient
  | ControlHandler.ControlHandler

/**
 * Builds the store, the ports and `Gateway.Gateway` (core's `Gateway.layer`) in the current scope, binds the port (docs/interfaces.md: a `serve` that cannot listen
 * changes nothing), imports the configuration's `directory` (replacing the store's), then starts answering (what
 * connected meanwhile was held) and, unless `worker: false`, forks the delivery worker. Closing the scope stops
 * accepting, lets in-flight requests finish, stops the worker (releasing its leases) and closes the store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (
  config: Config,
  options: StartOptions = {}
): Effect.Effect<Instance, StoreUnavailable | StoreNotSupported | ListenError | TelemetryUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    // `telemetry` (Telemetry.ts): tracing on for what is built and forked below — nothing at all when absent
    yield* Telemetry.install(config.telemetry)
    const store = options.store ?? storeLayer(config.store)
    // the shed rules in force (the file's and the store's, read every second) reach the gateway as a reference
    const ports = Layer.mergeAll(gatewayLayer(config, options), Worker.settingsLayer(config), Shed.inForceLayer(config))
      .pipe(Layer.provideMerge(store))
    // `Gateway.layer` looks the ports up once, here: the server's requests then run on `Gateway.Gateway` alone
    const context = yield* Layer.build(Gateway.layer.pipe(Layer.provideMerge(ports)))
    return yield* Effect.gen(function*() {
      // bind first: a gateway that cannot listen (the port is another's) fails before it changes the store; what
      // connects during the import is held, not answered, until the directory is in place
      const { open, ...running } = yield* Server.bind({
        ...config.server,
        port: options.port ?? config.server.port,
        ...(options.shutdownGraceMs !== undefined ? { shutdownGraceMs: options.shutdownGraceMs } : {})
      })
      if (config.directory !== undefined) {
        const directories = yield* DirectoryStore.DirectoryStore
        yield* directories.importDirectory(config.directory)
      }
      yield* open
      if (options.worker !== false) yield* Worker.fork(config)
      return { ...running, context }
    }).pipe(Effect.provide(context))
  })

/**
 * An embedded gateway.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddedServer extends Instance {
  /** Graceful shutdown; resolves once in-flight requests are answered and the store is closed. */
  readonly close: () => Promise<void>
  /** Runs an effect on the gateway's services (e.g. read the outbox). */
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, GatewayServices>) => Promise<A>
}

/**
 * Starts a gateway from a configuration object (every key optional, as in the file; `{ "env": "NAME" }` secrets
 * resolved; an invalid one throws the `ConfigError`) and resolves once it listens. Logs go to stdout as JSON lines
 * unless `log` is given.
 *
 * @example
 * const server = await makeServer({ store: { kind: "memory", ephemeral: true }, directory }, { port: 0 })
 * // … server.url …
 * await server.close()
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeServer = async (
  config: Config | ConfigInput,
  options: StartOptions & { readonly log?: (line: string) => void } = {}
): Promise<EmbeddedServer> => {
  let decoded: Config
  if (isDecoded(config)) decoded = config
  else {
    const result = decodeConfig(config, { file: "<makeServer>" })
    if (Either.isLeft(result)) throw result.left
    decoded = result.right
  }
  const scope = Effect.runSync(ScopeModule.make())
  // the stdout sink (and its exit hook) lives as long as the server: closed, with what it holds written, by `close`
  const sink = options.log === undefined
    ? Effect.runSync(ScopeModule.extend(Logging.stdoutSink, scope))
    : Logging.makeSink(options.log)
  const running = await Effect.runPromise(
    start(decoded, options).pipe(
      ScopeModule.extend(scope),
      Effect.provide(Logging.layer(sink)),
      Effect.onError(() => ScopeModule.close(scope, Exit.void))
    )
  )
  return {
    ...running,
    close: () => Effect.runPromise(ScopeModule.close(scope, Exit.void)),
    runPromise: (effect) => Effect.runPromise(Effect.provide(effect, running.context))
  }
}

const isDecoded = (config: Config | ConfigInput): config is Config =>
  typeof config.server === "object" && config.server !== null && "host" in config.server &&
  typeof config.delivery === "object" && config.delivery !== null && "leaseMs" in config.delivery
