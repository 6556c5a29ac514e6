/**
 * @cellgate/adapters — layers for the core services.
 *
 * The root loads with no database driver installed: it holds the memory layers and the HTTP region client only.
 * The SQL stores are subpath modules, each needing its own optional peer dependencies:
 * `@cellgate/adapters/Sqlite` (`@effect/sql-sqlite-node`, which brings `better-sqlite3`),
 * `@cellgate/adapters/Postgres` (`@effect/sql-pg`, which brings `pg`), and the driver-independent
 * `@cellgate/adapters/SqlStore` (the composition, with its caches), `SqlDirectory`, `SqlVolumeGate`, `SqlOutbox` and
 * `SqlMigrations` (`@effect/sql`).
 *
 * @since 0.1.0
 */
export * as HttpRegionClient from "./HttpRegionClient.js"
export * as Memory from "./Memory.js"
