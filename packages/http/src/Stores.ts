/**
 * The layers the configuration selects: the store (`store` section), the region client, the control side, the
 * providers and their app secrets, and the gateway's settings — the composition root's parts.
 *
 * @since 0.1.0
 */
import * as HttpRegionClient from "@cellgate/adapters/HttpRegionClient"
import * as Memory from "@cellgate/adapters/Memory"
import type * as SqlOutboxModule from "@cellgate/adapters/SqlOutbox"
import type { ControlHandler, ProviderRegistry, RegionClient, StoreServices } from "@cellgate/core"
import { Directory, GatewaySettings, Provider, Providers, StoreUnavailable } from "@cellgate/core"
import { Data, Effect, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Config, StoreConfig } from "./Config.js"
import * as Control from "./Control.js"
import * as StoreOpen from "./internal/StoreOpen.js"
import { OrphanSweep } from "./Orphans.js"

/**
 * Everything a store provides (core's `StoreServices`).
 *
 * @since 0.1.0
 * @category models
 */
export type { StoreServices }

/**
 * The configured store cannot be used by this build or this command.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreNotSupported extends Data.TaggedError("StoreNotSupported")<{ readonly message: string }> {}

/**
 * The memory store (`{"kind":"memory","ephemeral":true}`): empty until the configuration's directory is imported.
 *
 * @since 0.1.0
 * @category layers
 */
export const memoryStore: Layer.Layer<StoreServices> = Memory.storeLayer(new Directory({}))

/** `mkdir -p` without `recursive: true` (which never returns on some paths, e.g. under /proc, on Node 20). */
const mkdirs = (dir: string) => {
  const missing: Array<string> = []
  let current = dir
  while (!Fs.existsSync(current)) {
    missing.push(current)
    const parent = Path.dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const d of missing.reverse()) Fs.mkdirSync(d)
}

/** The `SqlClient` that `SqlOutbox.sweepOrphans` runs on (without a direct dependency on `@effect/sql`). */
type SqlClientService = Effect.Effect.Context<ReturnType<typeof SqlOutboxModule.sweepOrphans>>

/** `OrphanSweep` over the store's `SqlClient` (the SQL stores: the worker runs it, see `Orphans.ts`). */
const orphanSweepLayer = (SqlOutbox: typeof SqlOutboxModule): Layer.Layer<OrphanSweep, never, SqlClientService> =>
  Layer.effect(
    OrphanSweep,
    Effect.map(Effect.context<SqlClientService>(), (context) => ({
      enabled: true,
      sweep: (now: number) => Effect.provide(SqlOutbox.sweepOrphans(now), context)
    }))
  )

/**
 * The store of the `store` section: `Sqlite.layer` (the file's folder is created), `Postgres.layer`, or memory. The
 * SQL store layers bring their own directory cache and buffered volume gate. They also provide their `OrphanSweep` (a `Context.Reference`, so not in the type: the memory store's default
 * sweeps nothing), which the delivery worker runs.
 *
 * @since 0.1.0
 * @category layers
 */
export const storeLayer = (
  store: StoreConfig
): Layer.Layer<StoreServices, StoreUnavailable | StoreNotSupported> =>
  // a store that cannot be opened says why (refused, unknown host, authentication…), never with its password
  Layer.catchAll(openStore(store), (error) =>
    Layer.fail(error instanceof StoreUnavailable ? StoreOpen.explain(store, error) : error))

const openStore = (
  store: StoreConfig
): Layer.Layer<StoreServices, StoreUnavailable | StoreNotSupported> => {
  switch (store.kind) {
    case "memory":
      return memoryStore
    case "sqlite": {
      const path = store.path
      return Layer.unwrapEffect(
        Effect.try({
          try: () => {
            if (path !== ":memory:") mkdirs(Path.dirname(Path.resolve(path)))
          },
          catch: (cause) => new StoreUnavailable({ operation: `create the directory of ${path}`, cause })
        }).pipe(
          Effect.zipRight(
            Effect.promise(() =>
              Promise.all([import("@cellgate/adapters/Sqlite"), import("@cellgate/adapters/SqlOutbox")])
            )
          ),
          Effect.map(([Sqlite, SqlOutbox]) =>
            Layer.provideMerge(
              orphanSweepLayer(SqlOutbox),
              Sqlite.layerWithSql({ path, synchronous: store.synchronous })
            )
          )
        )
      )
    }
    case "postgres":
      // loaded on demand: a command on another store does not pay for the driver
      return Layer.unwrapEffect(
        Effect.map(
          Effect.promise(() =>
            Promise.all([import("@cellgate/adapters/Postgres"), import("@cellgate/adapters/SqlOutbox")])
          ),
          ([Postgres, SqlOutbox]) =>
            Layer.provideMerge(orphanSweepLayer(SqlOutbox), Postgres.layerWithSql({ url: store.url }))
        )
      )
  }
}

/**
 * `RegionClient`: real HTTP to the regions (`HttpRegionClient` of `@cellgate/adapters`; no redirects, typed
 * timeouts).
 *
 * @since 0.1.0
 * @category layers
 */
export const regionClientLayer: Layer.Layer<RegionClient.RegionClient> = HttpRegionClient.layer

/**
 * `ProviderSecrets` from the `providers` section.
 *
 * @since 0.1.0
 * @category layers
 */
export const providerSecretsLayer = (config: Config): Layer.Layer<Provider.ProviderSecrets> =>
  Layer.succeed(
    Provider.ProviderSecrets,
    Provider.ProviderSecrets.of({
      webhookSecret: (provider) => Option.fromNullable(config.providers[provider]?.webhookSecret),
      slack: config.providers.slack,
      discord: config.providers.discord
    })
  )

/**
 * What the gateway needs besides the store, each replaceable (tests register extra providers or a fake region
 * client).
 *
 * @since 0.1.0
 * @category models
 */
export interface GatewayOverrides {
  readonly providers?: Layer.Layer<ProviderRegistry.ProviderRegistry>
  readonly regionClient?: Layer.Layer<RegionClient.RegionClient>
  readonly control?: Layer.Layer<ControlHandler.ControlHandler>
}

/**
 * The services of the request path other than the store: providers, app secrets, region client, control side and
 * `GatewaySettings` (synchronous forwards time out after `delivery.requestTimeoutMs`).
 *
 * @since 0.1.0
 * @category layers
 */
export const gatewayLayer = (
  config: Config,
  overrides: GatewayOverrides = {}
): Layer.Layer<
  | ProviderRegistry.ProviderRegistry
  | Provider.ProviderSecrets
  | RegionClient.RegionClient
  | ControlHandler.ControlHandler
> =>
  Layer.mergeAll(
    overrides.providers ?? Providers.layer(),
    providerSecretsLayer(config),
    overrides.regionClient ?? regionClientLayer,
    overrides.control ?? Control.layer(config.control),
    Layer.succeed(GatewaySettings.GatewaySettings, {
      requestTimeoutMs: config.delivery.requestTimeoutMs,
      maxAnswerBytes: config.delivery.maxAnswerBytes
    })
  )
