/**
 * The application: an `HttpRouter` with routes of its own, and cellgate mounted on the two routed prefixes with
 * `WebhookApp.make()`. The gateway (`Gateway.layer`) runs over the application's own directory layers, the memory
 * outbox, the HTTP region client, and the delivery worker (`Delivery.layer`), which the outbox wakes on every enqueue.
 */
import { HttpRegionClient, Memory } from "@cellgate/adapters"
import { Delivery, Gateway, Providers, VolumeGate } from "@cellgate/core"
import { WebhookApp } from "@cellgate/http"
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { Customers } from "./Customers.js"
import * as Directory from "./Directory.js"

/** The application's routes, and cellgate's. */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/health", HttpServerResponse.text("ok")),
  HttpRouter.get(
    "/api/customers",
    Effect.flatMap(Customers, (customers) => customers.all).pipe(
      Effect.map((all) => all.map(({ id, region, slug }) => ({ id, slug, region }))),
      Effect.flatMap((rows) => HttpServerResponse.json(rows))
    )
  ),
  HttpRouter.all("/extensions/*", WebhookApp.make({ maxBodyBytes: 512 * 1024 })),
  HttpRouter.all("/plugins/*", WebhookApp.make({ maxBodyBytes: 512 * 1024 }))
)

/** What `Gateway.layer` needs: the directory (the application's), the providers, the outbox, the volume gate and
 * the region client. */
export const ports = Layer.mergeAll(
  Directory.layer,
  Providers.layer(),
  Memory.outboxLayer,
  VolumeGate.layerMemory,
  HttpRegionClient.layer
)

/** The gateway and its delivery worker, over the ports (which stay visible: the router's routes read them too). */
export const cellgate = Layer.merge(Gateway.layer, Delivery.layer).pipe(Layer.provideMerge(ports))
