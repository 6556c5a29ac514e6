// The stores under test, built fresh per test, and plain views of their answers for comparisons.
import { Memory } from "@cellgate/adapters"
import * as Postgres from "@cellgate/adapters/Postgres"
import * as Sqlite from "@cellgate/adapters/Sqlite"
import type * as SqlStore from "@cellgate/adapters/SqlStore"
import type { Integration, Organization, Outbox, Region, StoreUnavailable } from "@cellgate/core"
import { Directory, StoreHealth } from "@cellgate/core"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { resetTables } from "./Postgres.js"

export type Services = SqlStore.Services

/** The memory store: exactly the seven services the SQL stores provide. */
export const memoryStore: Layer.Layer<Services, StoreUnavailable> = Layer.mergeAll(
  Memory.directoryLayer(new Directory({})),
  Memory.volumeGateLayer,
  Memory.outboxLayer,
  Layer.succeed(StoreHealth.StoreHealth, StoreHealth.StoreHealth.of({ check: Effect.void }))
)

/** A temporary directory, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "cellgate-test-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The store itself under test: every call reaches the database (no directory cache, no buffered volume gate). */
const uncached = { directoryCache: false, volumeBuffer: false } as const

/** A SQLite store on a new temporary file (plus its `SqlClient`). */
export const sqliteStore = (
  options: Omit<Sqlite.Options, "path"> = {}
): Layer.Layer<Services | SqlClient.SqlClient, StoreUnavailable> =>
  Layer.unwrapScoped(
    Effect.map(tempDir, (dir) => Sqlite.layerWithSql({ ...uncached, ...options, path: path.join(dir, "db.sqlite") }))
  )

/** A PostgreSQL store on `url`, its tables emptied first (plus its `SqlClient`). */
export const postgresStore = (
  url: string,
  options: Omit<Postgres.Options, "url"> = {}
): Layer.Layer<Services | SqlClient.SqlClient, StoreUnavailable> =>
  Layer.effectDiscard(resetTables).pipe(Layer.provideMerge(Postgres.layerWithSql({ ...uncached, ...options, url })))

const secret = (value: Redacted.Redacted<string> | undefined) => value === undefined ? undefined : Redacted.value(value)

export const plainIntegration = (i: Integration) => ({
  id: i.id,
  provider: i.provider,
  externalId: i.externalId,
  status: i.status,
  webhookSecret: secret(i.metadata.webhookSecret),
  sharedSecret: secret(i.metadata.sharedSecret)
})

export const plainOrganization = (o: Organization) => ({ id: o.id, slug: o.slug, region: o.region })

export const plainRegion = (r: Region) => ({ name: r.name, url: r.url, secret: secret(r.secret) })

export const plainPayload = <P extends Outbox.StoredPayload>(p: P) => ({
  ...p,
  body: Buffer.from(p.body).toString("hex")
})
