/**
 * Delivery ids and worker names as a service, so tests can fix them. The default (no layer needed) uses
 * `crypto.randomUUID()`; `layerTest` gives deterministic ids.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"

/**
 * Where the gateway takes each payload's `x-cellgate-delivery-id` (and each synchronous forward's), and the delivery
 * worker its lease owner name.
 *
 * @since 0.2.0
 * @category tags
 */
export class IdGenerator extends Context.Reference<IdGenerator>()("@cellgate/core/IdGenerator", {
  defaultValue: (): {
    /** A fresh delivery id (a UUID by default). */
    readonly deliveryId: Effect.Effect<string>
    /** A fresh worker name, unique per process (`worker-<uuid>` by default). */
    readonly workerName: Effect.Effect<string>
  } => random
}) {}

const random: IdGenerator["Type"] = {
  deliveryId: Effect.sync(() => crypto.randomUUID()),
  workerName: Effect.sync(() => `worker-${crypto.randomUUID()}`)
}

/**
 * The UUID-shaped id number `n` of `layerTest`: `00000000-0000-4000-8000-000000000001` for 1.
 *
 * @since 0.2.0
 * @category constructors
 */
export const testId = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`

/**
 * Deterministic ids, counted from 1 for each layer build: delivery ids `testId(1)`, `testId(2)`, …; worker names
 * `worker-1`, `worker-2`, ….
 *
 * @since 0.2.0
 * @category layers
 */
export const layerTest: Layer.Layer<never> = Layer.sync(IdGenerator, () => {
  let deliveries = 0
  let workers = 0
  return {
    deliveryId: Effect.sync(() => testId(++deliveries)),
    workerName: Effect.sync(() => `worker-${++workers}`)
  }
})
