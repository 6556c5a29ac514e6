/**
 * @cellgate/adapters — layers for the core services.
 *
 * @since 0.1.0
 */
export * as HttpRegionClient from "./HttpRegionClient.js"
export * as Memory from "./Memory.js"
export * as Postgres from "./Postgres.js"
export * as Sqlite from "./Sqlite.js"
export * as SqlMigrations from "./SqlMigrations.js"
export * as SqlStore from "./SqlStore.js"
