/**
 * @cellgate/http — the gateway: HTTP server, configuration file, the `cellgate` CLI, and `WebhookApp` (cellgate as an
 * `@effect/platform` `HttpApp`, for an application's own router).
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.js"
export * as Config from "./Config.js"
export * as Control from "./Control.js"
export * as Logging from "./Logging.js"
export * as Prometheus from "./Prometheus.js"
export * as Server from "./Server.js"
export * as Standalone from "./Standalone.js"
export { makeServer } from "./Standalone.js"
export type { EmbeddedServer, StartOptions } from "./Standalone.js"
export * as Stores from "./Stores.js"
export * as WebhookApp from "./WebhookApp.js"
export * as Worker from "./Worker.js"
