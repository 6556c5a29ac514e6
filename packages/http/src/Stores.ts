/**
 * The layers the configuration selects: the store (`store` section), the region client, the control side, the
 * providers and their app secrets, and the gateway's settings — the composition root's parts.
 *
 * @since 0.1.0
 */
import * as HttpRegionClient from "@cellgate/adapters/HttpRegionClient"
import * as Memory from "@cellgate/adapters/Memory"
import type * as SqlStoreModule from "@cellgate/adapters/SqlStore"
import type { ControlHandler, ProviderRegistry, RegionClient, StoreServices } from "@cellgate/core"
import {
  Directory,
  DirectoryCache,
  GatewaySettings,
  Providers,
  ProviderSecrets,
  StoreUnavailable,
  VolumeGates
} from "@cellgate/core"
import { Data, Effect, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Config, StoreConfig } from "./Config.js"
import * as Control from "./Control.js"
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

/** The `SqlClient` that `SqlStore.sweepOrphans` runs on (without a direct dependency on `@effect/sql`). */
type SqlClientService = Effect.Effect.Context<ReturnType<typeof SqlStoreModule.sweepOrphans>>

/** `OrphanSweep` over the store's `SqlClient` (the SQL stores: the worker runs it, see `Orphans.ts`). */
const orphanSweepLayer = (SqlStore: typeof SqlStoreModule): Layer.Layer<OrphanSweep, never, SqlClientService> =>
  Layer.effect(
    OrphanSweep,
    Effect.map(Effect.context<SqlClientService>(), (context) => ({
      enabled: true,
      sweep: (now: number) => Effect.provide(SqlStore.sweepOrphans(now), context)
    }))
  )

/**
 * The store of the `store` section: `Sqlite.layer` (the file's folder is created), `Postgres.layer`, or memory. The
 * SQL stores also provide their `OrphanSweep` (a `Context.Reference`, so not in the type: the memory store's default
 * sweeps nothing), which the delivery worker runs.
 *
 * @since 0.1.0
 * @category layers
 */
export const storeLayer = (
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
              Promise.all([import("@cellgate/adapters/Sqlite"), import("@cellgate/adapters/SqlStore")])
            )
          ),
          Effect.map(([Sqlite, SqlStore]) =>
            Layer.provideMerge(
              orphanSweepLayer(SqlStore),
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
            Promise.all([import("@cellgate/adapters/Postgres"), import("@cellgate/adapters/SqlStore")])
          ),
          ([Postgres, SqlStore]) =>
            Layer.provideMerge(orphanSweepLayer(SqlStore), Postgres.layerWithSql({ url: store.url }))
        )
      )
  }
}

/**
 * A store as the long-running processes use it: directory reads through a short-lived cache (`DirectoryCache`,
 * cleared by an import through it), and the volume counter counted in memory and added to the store's shared
 * counter once a second (`VolumeGates.buffered`), so that neither costs a store round trip per webhook.
 *
 * @since 0.1.0
 * @category layers
 */
export const withCaches = <E>(store: Layer.Layer<StoreServices, E>): Layer.Layer<StoreServices, E> =>
  Layer.mergeAll(
    store,
    VolumeGates.buffered().pipe(Layer.provide(store)),
    DirectoryCache.layer().pipe(Layer.provide(store))
  )

/**
 * `RegionClient`: real HTTP to the regions (`HttpRegionClient` of `@cellgate/adapters`; no redirects, typed
 * timeouts).
 *
 * @since 0.1.0
 * @category layers
 */
export const regionClientLayer: Layer.Layer<RegionClient> = HttpRegionClient.layer

/**
 * `ProviderSecrets` from the `providers` section.
 *
 * @since 0.1.0
 * @category layers
 */
export const providerSecretsLayer = (config: Config): Layer.Layer<ProviderSecrets> =>
  Layer.succeed(
    ProviderSecrets,
    ProviderSecrets.of({
      webhookSecret: (provider) => Option.fromNullable(config.providers[provider]?.webhookSecret)
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
  readonly providers?: Layer.Layer<ProviderRegistry>
  readonly regionClient?: Layer.Layer<RegionClient>
  readonly control?: Layer.Layer<ControlHandler>
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
): Layer.Layer<ProviderRegistry | ProviderSecrets | RegionClient | ControlHandler> =>
  Layer.mergeAll(
    overrides.providers ?? Providers.layer(),
    providerSecretsLayer(config),
    overrides.regionClient ?? regionClientLayer,
    overrides.control ?? Control.layer(config.control),
    Layer.succeed(GatewaySettings, {
      requestTimeoutMs: config.delivery.requestTimeoutMs,
      maxAnswerBytes: config.delivery.maxAnswerBytes
    })
  )
