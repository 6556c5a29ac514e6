/**
 * The delivery worker as the gateway runs it (`serve` forks it; `cellgate worker` runs only it): core's
 * `Delivery.run` with the configuration's `delivery` section as its settings.
 *
 * @since 0.1.0
 */
import type { Outbox, RegionClient, RegionDirectory } from "@cellgate/core"
import { Delivery, DeliverySettings } from "@cellgate/core"
import type { Layer, Scope } from "effect"
import { Effect } from "effect"
import * as Os from "node:os"
import type { Config } from "./Config.js"
import * as Orphans from "./Orphans.js"

/**
 * `DeliverySettings` from the configuration's `delivery` section.
 *
 * @since 0.1.0
 * @category layers
 */
export const settingsLayer = (config: Config): Layer.Layer<never> => DeliverySettings.layer(config.delivery)

/**
 * A unique lease owner for this process: `<host>:<pid>:<random>`.
 *
 * @since 0.1.0
 * @category utils
 */
export const owner = (): string => `${Os.hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`

/**
 * Runs the drain loop until interrupted (interruption releases the leases it holds). Each enqueue of this process
 * (the gateway's, on the same outbox) wakes it at once. Beside it runs the store's orphan sweep (`Orphans.ts`: SQL
 * stores, at start and then every 60 s; nothing on the memory store).
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (
  config: Config
): Effect.Effect<never, never, Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory> =>
  Effect.scoped(
    Effect.zipRight(
      Effect.forkScoped(Orphans.sweepForever()),
      Delivery.run({ owner: owner(), settings: config.delivery })
    )
  )

/**
 * Forks the worker into the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fork = (
  config: Config
): Effect.Effect<
  void,
  never,
  Scope.Scope | Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory
> => Effect.asVoid(Effect.forkScoped(run(config)))
