// A throw-away PostgreSQL database per test file: `CREATE DATABASE cellgate_test_<random>` on the server of
// `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test), dropped (WITH FORCE) when the layer closes.
// PostgreSQL missing is a loud failure, never a skip.
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Duration, Effect, Layer, Redacted } from "effect"

export const adminUrl: string = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const howToStart =
  "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (or point DATABASE_URL at a server)"

/** The URL of `adminUrl`'s server with another database name. */
export const urlFor = (database: string): string => {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return url.toString()
}

/** Runs `f` with a short-lived client on `url` (fails with a defect explaining how to start PostgreSQL). */
export const withClient = <A, E>(
  url: string,
  f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  PgClient.make({ url: Redacted.make(url), connectTimeout: Duration.seconds(3), maxConnections: 1 }).pipe(
    Effect.catchAll((error) =>
      Effect.dieMessage(`PostgreSQL is not reachable at ${url} (${error.message}): ${howToStart}`)
    ),
    Effect.flatMap(f),
    Effect.scoped,
    Effect.provide(Reactivity.layer)
  )

export class TestDatabase extends Context.Tag("test/support/Postgres/TestDatabase")<TestDatabase, {
  readonly name: string
  readonly url: string
}>() {}

/** Creates `cellgate_test_<random>` and drops it when the scope closes. */
export const layer: Layer.Layer<TestDatabase> = Layer.scoped(
  TestDatabase,
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `cellgate_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
      yield* withClient(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)).pipe(Effect.orDie)
      return { name, url: urlFor(name) }
    }),
    ({ name }) =>
      withClient(adminUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(Effect.ignore)
  )
)

/** Empties every cellgate table and restarts the payload ids (fresh state between tests on one database). */
export const resetTables: Effect.Effect<void, never, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql.unsafe(
      `TRUNCATE outbox_payloads, outbox_mailboxes, outbox_dead_letters, outbox_sequences, volume_counters, regions,
       organizations, integrations, organization_integrations, replies, dedupe RESTART IDENTITY`
    )
).pipe(Effect.orDie)
