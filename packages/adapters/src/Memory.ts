/**
 * Every core service in memory, under the names applications use: the memory layers of the ports (each port's
 * `layerMemory` in `@cellgate/core`) re-exported here, plus a recording region client for tests. For tests, and for
 * users who embed cellgate with their own data. Nothing here survives the process.
 *
 * @since 0.1.0
 */
import type { Directory, Region, StoreServices } from "@cellgate/core"
import * as ControlHandler from "@cellgate/core/ControlHandler"
import * as DirectoryStore from "@cellgate/core/DirectoryStore"
import * as Outbox from "@cellgate/core/Outbox"
import * as RegionClient from "@cellgate/core/RegionClient"
import * as StoreHealth from "@cellgate/core/StoreHealth"
import * as VolumeGate from "@cellgate/core/VolumeGate"
import { Context, Effect, Layer } from "effect"

/**
 * `IntegrationRepo`, `OrgRepo`, `RegionDirectory` and `DirectoryStore` over one in-memory directory (an import
 * replaces what the three ports answer at once): `DirectoryStore.layerMemory`.
 *
 * @since 0.1.0
 * @category layers
 */
export const directoryLayer = DirectoryStore.layerMemory

/**
 * The volume gate in memory (one process only): `VolumeGate.layerMemory`.
 *
 * @since 0.1.0
 * @category layers
 */
export const volumeGateLayer: Layer.Layer<VolumeGate.VolumeGate> = VolumeGate.layerMemory

/**
 * The rule of the volume gate: `VolumeGate.volumeHit`.
 *
 * @since 0.1.0
 * @category utils
 */
export const volumeHit = VolumeGate.volumeHit

/**
 * The outbox in memory, with the same semantics (ids, leases, ordering, dead letters, replay, wake-up) as the SQL
 * stores: `Outbox.layerMemory`.
 *
 * @since 0.1.0
 * @category layers
 */
export const outboxLayer: Layer.Layer<Outbox.Outbox> = Outbox.layerMemory

/**
 * One memory outbox, outside a layer: `Outbox.makeMemory`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeOutbox: () => Outbox.Outbox["Type"] = Outbox.makeMemory

/**
 * The store services in memory: the directory, the volume gate, the outbox, and a store that is always ready.
 *
 * @since 0.1.0
 * @category layers
 */
export const storeLayer = (directory: Directory): Layer.Layer<StoreServices> =>
  Layer.mergeAll(directoryLayer(directory), StoreHealth.layerAlwaysReady, volumeGateLayer, outboxLayer)

/**
 * One request a region client sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentRequest {
  readonly region: string
  readonly request: RegionClient.OutgoingRequest
}

/**
 * What a recording region client sent (`recordingRegionClient`).
 *
 * @since 0.1.0
 * @category services
 */
export class RegionRecorder extends Context.Tag("@cellgate/adapters/Memory/RegionRecorder")<RegionRecorder, {
  readonly sent: Effect.Effect<ReadonlyArray<SentRequest>>
}>() {}

/**
 * A region client that records what it sends and answers with `answer` (default 200, empty body). Read what was
 * sent through `RegionRecorder`.
 *
 * @since 0.1.0
 * @category layers
 */
export const recordingRegionClient = (
  answer: (
    region: Region,
    request: RegionClient.OutgoingRequest
  ) => Effect.Effect<RegionClient.RegionResponse, any> = () =>
    Effect.succeed({ status: 200, headers: {}, body: new Uint8Array(0) })
): Layer.Layer<RegionClient.RegionClient | RegionRecorder> =>
  Layer.effectContext(Effect.sync(() => {
    const sent: Array<SentRequest> = []
    return Context.make(
      RegionClient.RegionClient,
      RegionClient.RegionClient.of({
        send: (region, request) =>
          Effect.suspend(() => {
            sent.push({ region: region.name, request })
            return answer(region, request)
          })
      })
    ).pipe(Context.add(RegionRecorder, RegionRecorder.of({ sent: Effect.sync(() => sent.slice()) })))
  }))

/**
 * Every store service in memory (`storeLayer`), a recording region client, and the control side answering 404.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  directory: Directory
): Layer.Layer<StoreServices | RegionClient.RegionClient | RegionRecorder | ControlHandler.ControlHandler> =>
  Layer.mergeAll(storeLayer(directory), recordingRegionClient(), ControlHandler.layerNotFound)
