/**
 * The delivery worker as the gateway runs it (`serve` forks it; `cellgate worker` runs only it): core's
 * `Delivery.run` with the configuration's `delivery` section as its settings.
 *
 * @since 0.1.0
 */
import type { Outbox, RegionClient, RegionDirectory, WebhookResponse } from "@cellgate/core"
import { Delivery, DeliverySettings, errorResponse, IdGenerator, StoreHealth } from "@cellgate/core"
import type { Layer, Scope } from "effect"
import { Effect, Exit, Metric, Runtime } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import type { Config } from "./Config.js"
import * as Orphans from "./Orphans.js"
import * as Prometheus from "./Prometheus.js"
import type { ListenError } from "./Server.js"
import * as Server from "./Server.js"
import type { TelemetryUnavailable } from "./Telemetry.js"
import * as Telemetry from "./Telemetry.js"

/**
 * `DeliverySettings` from the configuration's `delivery` section.
 *
 * @since 0.1.0
 * @category layers
 */
export const settingsLayer = (config: Config): Layer.Layer<never> => DeliverySettings.layer(config.delivery)

/**
 * A unique lease owner for this process: `<host>:<pid>:<worker name>`, the name from core's `IdGenerator` (a
 * `worker-<uuid>` by default; `IdGenerator.layerTest` makes it deterministic), so an operator reading
 * `cellgate mailboxes` sees which machine and process holds a mailbox.
 *
 * @since 0.3.0
 * @category utils
 */
export const owner: Effect.Effect<string> = Effect.flatMap(
  IdGenerator.IdGenerator,
  (ids) => Effect.map(ids.workerName, (name) => `${Os.hostname()}:${process.pid}:${name}`)
)

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
    Effect.gen(function*() {
      // the sweep's counter is listed at 0 from the start (a scrape sees the series before anything is repaired)
      if ((yield* Orphans.OrphanSweep).enabled) yield* Metric.value(Orphans.orphansRepairedTotal)
      yield* Effect.forkScoped(Orphans.sweepForever())
      return yield* Delivery.run({ owner: yield* owner, settings: config.delivery })
    })
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

// -------------------------------------------------------------------------------------------------------------------
// `cellgate worker`: metrics, health and readiness of the worker process
// -------------------------------------------------------------------------------------------------------------------

/**
 * The worker's own HTTP endpoint (`worker --metrics-port`).
 *
 * @since 0.2.0
 * @category models
 */
export interface MetricsServer {
  readonly host: string
  readonly port: number
  /** `http://HOST:PORT` */
  readonly url: string
}

const plain = (status: number, body: string, contentType = "text/plain; charset=utf-8"): WebhookResponse => ({
  status,
  headers: { "content-type": contentType },
  body
})

const write = (res: Http.ServerResponse, response: WebhookResponse, head: boolean) => {
  if (res.headersSent || res.destroyed) return
  const body = typeof response.body === "string" ? Buffer.from(response.body) : Buffer.from(response.body)
  res.writeHead(response.status, { ...response.headers, "content-length": String(body.length) })
  res.end(head ? undefined : body)
}

/**
 * Serves `GET /healthz` (200 `ok`: the process runs), `GET /readyz` (`StoreHealth.check`: 200 `ready`, or 503
 * `store_unavailable` with `Retry-After: 5`) and `GET /metrics` (the outbox gauges refreshed, then the Prometheus
 * text of this process: the delivery metrics live here in the PostgreSQL layout) on `host:port` (0: any free port)
 * until the scope closes. Anything else is 404; a method other than GET / HEAD is 405.
 *
 * @since 0.2.0
 * @category constructors
 */
export const serveMetrics = (options: {
  readonly host: string
  readonly port: number
}): Effect.Effect<
  MetricsServer,
  ListenError,
  Scope.Scope | StoreHealth.StoreHealth | Outbox.Outbox | RegionDirectory.RegionDirectory
> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<Outbox.Outbox | RegionDirectory.RegionDirectory>()
    const health = yield* StoreHealth.StoreHealth
    const answer = (
      effect: Effect.Effect<WebhookResponse, never, Outbox.Outbox | RegionDirectory.RegionDirectory>,
      res: Http.ServerResponse,
      head: boolean
    ) =>
      Runtime.runFork(runtime)(effect).addObserver((exit) =>
        write(
          res,
          Exit.isSuccess(exit) ? exit.value : errorResponse(500, "internal_error", "the worker failed to answer"),
          head
        )
      )
    const readiness = Effect.match(health.check, {
      onFailure: () => errorResponse(503, "store_unavailable", "the store is not ready", { "retry-after": "5" }),
      onSuccess: () => plain(200, "ready")
    })
    const metrics = Delivery.updateOutboxGauges().pipe(
      Effect.catchAll(() => Effect.void),
      Effect.zipRight(Prometheus.render),
      Effect.map((body) => plain(200, body, Prometheus.contentType))
    )
    const server = Http.createServer({ requestTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
      req.resume()
      const target = req.url ?? "/"
      const q = target.indexOf("?")
      const path = q === -1 ? target : target.slice(0, q)
      const head = req.method === "HEAD"
      if (req.method !== "GET" && !head) {
        return write(res, errorResponse(405, "method_not_allowed", "GET /healthz, /readyz or /metrics"), false)
      }
      switch (path) {
        case "/healthz":
          return write(res, plain(200, "ok"), head)
        case "/readyz":
          return answer(readiness, res, head)
        case "/metrics":
          return answer(metrics, res, head)
        default:
          return write(res, errorResponse(404, "not_found", "GET /healthz, /readyz or /metrics"), head)
      }
    })
    yield* Effect.acquireRelease(
      Server.listen(server, options.port, options.host),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const address = server.address() as AddressInfo
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address
    return { host: address.address, port: address.port, url: `http://${host}:${address.port}` }
  })

/**
 * @since 0.2.0
 * @category models
 */
export interface MainOptions {
  /** `--metrics-port` (0: any free port); none: no HTTP at all. */
  readonly metricsPort?: number | undefined
  /** Prints a line for the operator (`cellgate worker metrics on http://HOST:PORT`). */
  readonly announce: (line: string) => Effect.Effect<void>
}

/**
 * `cellgate worker`: the configuration's `telemetry` (if any), the metrics endpoint when a port is given (on
 * `server.host`), then `run` until interrupted.
 *
 * @since 0.2.0
 * @category constructors
 */
export const main = (
  config: Config,
  options: MainOptions
): Effect.Effect<
  never,
  ListenError | TelemetryUnavailable,
  Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory | StoreHealth.StoreHealth
> =>
  Effect.scoped(Effect.gen(function*() {
    yield* Telemetry.install(config.telemetry)
    if (options.metricsPort !== undefined) {
      const served = yield* serveMetrics({ host: config.server.host, port: options.metricsPort })
      yield* options.announce(`cellgate worker metrics on ${served.url}`)
      yield* Effect.logInfo("worker metrics").pipe(Effect.annotateLogs({ url: served.url }))
    }
    return yield* run(config)
  }))
