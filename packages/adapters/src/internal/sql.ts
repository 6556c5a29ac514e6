/**
 * What the SQL store modules share: error mapping (`StoreUnavailable`, `LeaseLost` kept), the write health that
 * readiness reads, the transaction runner, the column schemas rows are decoded with, and small value helpers.
 *
 * @internal
 */
import { LeaseLost, StoreUnavailable } from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Cause, Context, Effect, Exit, Option, Order, ParseResult, Schema, Scope } from "effect"

/** Maps every failure and defect (a failed COMMIT is a defect in @effect/sql) to `StoreUnavailable`, keeps `LeaseLost`. */
export const storeErrors = (operation: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.catchAllCause(self, (cause): Effect.Effect<never, StoreUnavailable | LeaseLost> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof LeaseLost) return Effect.fail(failure.value)
    return Effect.fail(new StoreUnavailable({ operation, cause: Cause.squash(cause) }))
  }) as Effect.Effect<A, (E extends LeaseLost ? LeaseLost : never) | StoreUnavailable, R>

/**
 * A directory read the store could not answer (the driver failed: connection refused or lost, I/O error; or a row
 * that does not decode) is the typed `StoreUnavailable` (503), never a defect; a defect here stays one (a bug: 500).
 */
export const readErrors = (operation: string) =>
<A, R>(
  self: Effect.Effect<A, SqlError | ParseResult.ParseError, R>
): Effect.Effect<A, StoreUnavailable, R> => Effect.mapError(self, (cause) => new StoreUnavailable({ operation, cause }))

/**
 * What readiness knows about writes: the last write that failed, until an append succeeds again (an `enqueue`
 * commit, an import, a replay, or the probe of `StoreHealth.check`). Every write records its failure; only appends
 * clear it, so that an update that still fits (a claim, a counter) does not hide a disk that cannot grow.
 */
export interface WriteHealthService {
  readonly failure: () => StoreUnavailable | undefined
  /** Records the failure of a write (`StoreUnavailable` only; `LeaseLost` is an answer, not a failure). */
  readonly track: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `track`, and a success clears the recorded failure. */
  readonly trackAppend: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Records the end of a write given as an `Exit` (`append`: a success clears the recorded failure). */
  readonly record: (exit: Exit.Exit<unknown, unknown>, append: boolean) => void
  readonly failed: (error: StoreUnavailable) => void
}

/** Tracks nothing: the store modules used alone, without `StoreHealth` reading their writes. */
const untracked: WriteHealthService = {
  failure: () => undefined,
  track: (self) => self,
  trackAppend: (self) => self,
  record: () => {},
  failed: () => {}
}

/**
 * The write health of one store, shared by its modules (read once when each module is built). `SqlStore.layer`
 * provides one per store; a module used alone tracks nothing.
 */
export class WriteHealth extends Context.Reference<WriteHealth>()("@cellgate/adapters/internal/WriteHealth", {
  defaultValue: (): WriteHealthService => untracked
}) {}

export const makeWriteHealth = (): WriteHealthService => {
  let failure: StoreUnavailable | undefined
  const record = (exit: Exit.Exit<unknown, unknown>, append: boolean) => {
    if (Exit.isSuccess(exit)) {
      if (append) failure = undefined
      return
    }
    const error = Cause.failureOption(exit.cause)
    if (Option.isSome(error) && error.value instanceof StoreUnavailable) failure = error.value
  }
  return {
    failure: () => failure,
    record,
    failed: (error) => {
      failure = error
    },
    track: (self) => Effect.onExit(self, (exit) => Effect.sync(() => record(exit, false))),
    trackAppend: (self) => Effect.onExit(self, (exit) => Effect.sync(() => record(exit, true)))
  }
}

/** A transaction runner (see `makeTransaction`). */
export type Transaction = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>

/**
 * A transaction runner. On SQLite it opens `BEGIN IMMEDIATE` (the write lock is taken up front, so another process
 * — e.g. the CLI replaying dead letters — waits on `busy_timeout` instead of failing with `SQLITE_BUSY_SNAPSHOT`);
 * on PostgreSQL it is `sql.withTransaction` (READ COMMITTED).
 */
export const makeTransaction = (sql: SqlClient.SqlClient): Transaction =>
  sql.onDialectOrElse({
    sqlite: () =>
      SqlClient.makeWithTransaction<SqlClient.TransactionConnection, Connection>({
        transactionTag: SqlClient.TransactionConnection,
        spanAttributes: [],
        acquireConnection: Effect.flatMap(
          Scope.make(),
          (scope) =>
            Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const).pipe(
              Effect.onError((exit) => Scope.close(scope, Exit.failCause(exit)))
            )
        ),
        begin: (conn) => conn.executeUnprepared("BEGIN IMMEDIATE", [], undefined),
        savepoint: (conn, id) => conn.executeUnprepared(`SAVEPOINT effect_sql_${id}`, [], undefined),
        commit: (conn) => conn.executeUnprepared("COMMIT", [], undefined),
        rollback: (conn) => conn.executeUnprepared("ROLLBACK", [], undefined),
        rollbackSavepoint: (conn, id) => conn.executeUnprepared(`ROLLBACK TO SAVEPOINT effect_sql_${id}`, [], undefined)
      }),
    orElse: () => sql.withTransaction
  })

/** `BEGIN` of a batch's own transaction on a reserved connection (SQLite takes the write lock up front). */
export const beginText = (sql: SqlClient.SqlClient): string =>
  sql.onDialectOrElse({ pg: () => "BEGIN", orElse: () => "BEGIN IMMEDIATE" })

export const isPg = (sql: SqlClient.SqlClient): boolean => sql.onDialectOrElse({ pg: () => true, orElse: () => false })

// ---------------------------------------------------------------------------------------------------------------
// column schemas: what the drivers return (SQLite: numbers and Buffers; PostgreSQL: BIGINT and COUNT as strings)
// ---------------------------------------------------------------------------------------------------------------

const toNumber = (value: number | string | bigint): number => (typeof value === "number" ? value : Number(value))

/** An integer column: a number, or the string / bigint a driver gives for BIGINT and COUNT. */
export const Int: Schema.Schema<number, number | string | bigint> = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String, Schema.BigIntFromSelf),
  Schema.Number,
  {
    strict: true,
    decode: (value, _, ast) => {
      const n = toNumber(value)
      return Number.isFinite(n)
        ? ParseResult.succeed(n)
        : ParseResult.fail(new ParseResult.Type(ast, value, "not a number"))
    },
    encode: (n) => ParseResult.succeed(n)
  }
)

/** A nullable integer column. */
export const IntOrNull = Schema.NullOr(Int)

const toBytes = (value: Uint8Array | string): Uint8Array =>
  typeof value === "string"
    ? new TextEncoder().encode(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)

/** A BLOB / bytea column (a Buffer from either driver) as a plain `Uint8Array` view of the same bytes. */
export const Bytes: Schema.Schema<Uint8Array, Uint8Array | string> = Schema.transform(
  Schema.Union(Schema.Uint8ArrayFromSelf, Schema.String),
  Schema.Uint8ArrayFromSelf,
  { strict: true, decode: toBytes, encode: (bytes) => bytes }
)

/** A JSON text column of string headers. */
export const Headers = Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.String }))

/** A nullable secret column: `Option<Redacted>` (never a plain string past the row). */
export const SecretOrNone = Schema.OptionFromNullOr(Schema.Redacted(Schema.String))

/** Decodes the rows of one statement with a row schema (compiled once). */
export const decodeRows = <A, I>(
  row: Schema.Schema<A, I>
): (rows: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, ParseResult.ParseError> =>
  Schema.decodeUnknown(Schema.Array(row))

// ---------------------------------------------------------------------------------------------------------------
// values
// ---------------------------------------------------------------------------------------------------------------

export const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** PostgreSQL text cannot hold NUL: free text that may come from a region's answer is stored with U+FFFD instead. */
export const safeText = <S extends string | null>(value: S): S =>
  (value === null ? null : value.replaceAll(String.fromCharCode(0), "\uFFFD")) as S

/** Orders by mailbox name: the one lock order of every batched write (no deadlock between them on PostgreSQL). */
export const byMailbox = <A extends { readonly mailbox: string }>(): Order.Order<A> =>
  Order.mapInput(Order.string, (a: A) => a.mailbox)
