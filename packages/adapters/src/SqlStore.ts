/**
 * The store over any `SqlClient` (SQLite or PostgreSQL): directory, volume gate, outbox (with group commit) and
 * health (readiness: a query, the migrations, and no write failed since the last append — see `StoreHealth`). A store
 * that cannot be read or written fails with `StoreUnavailable`, on the directory reads too. `Sqlite.layer` and
 * `Postgres.layer` build the client and run the migrations; this module answers every call exactly as the memory
 * store (`Memory.ts`) does.
 *
 * @since 0.1.0
 */
import type {
  DeadLetter,
  Directory,
  IntegrationId,
  MailboxInfo,
  NewPayload,
  OrganizationId,
  RegionName,
  StoredPayload,
  StoreServices
} from "@cellgate/core"
import {
  DirectoryStore,
  Integration,
  IntegrationRepo,
  LeaseLost,
  Organization,
  OrgRepo,
  Outbox,
  Region,
  RegionDirectory,
  StoreHealth,
  StoreUnavailable,
  VolumeGate
} from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Cause, Context, Deferred, Effect, Exit, FiberId, Layer, Option, Redacted, Scope } from "effect"
import { latestMigration, migrationsTable } from "./SqlMigrations.js"

/**
 * What one group commit of `enqueue` wrote (for tests and metrics).
 *
 * @since 0.1.0
 * @category models
 */
export interface CommitInfo {
  /** `enqueue` calls answered by this transaction. */
  readonly requests: number
  readonly payloads: number
  /** false when the transaction failed (every request of the batch then failed with `StoreUnavailable`). */
  readonly ok: boolean
}

/**
 * What one group commit of the drain's writes (`complete`, `retry`, `deadLetter`, `release`) carried.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutcomeCommitInfo {
  /** Writes answered by this transaction (those refused with `LeaseLost` included). */
  readonly writes: number
  /** false when the transaction failed (every write of the batch then failed with `StoreUnavailable`). */
  readonly ok: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /** Called after every enqueue transaction (committed or failed). */
  readonly onCommit?: ((info: CommitInfo) => void) | undefined
  /** Called after every transaction of the drain's writes (committed or failed). */
  readonly onOutcomeCommit?: ((info: OutcomeCommitInfo) => void) | undefined
  /** At most this many `enqueue` calls (and, separately, drain writes) share one transaction (default 256). */
  readonly maxBatch?: number | undefined
}

/**
 * Every service the SQL stores provide.
 *
 * @since 0.1.0
 * @category models
 */
export type Services = StoreServices

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

/** Maps every failure and defect (a failed COMMIT is a defect in @effect/sql) to `StoreUnavailable`, keeps `LeaseLost`. */
const storeErrors = (operation: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.catchAllCause(self, (cause): Effect.Effect<never, StoreUnavailable | LeaseLost> => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof LeaseLost) return Effect.fail(failure.value)
    return Effect.fail(new StoreUnavailable({ operation, cause: Cause.squash(cause) }))
  }) as Effect.Effect<A, (E extends LeaseLost ? LeaseLost : never) | StoreUnavailable, R>

/**
 * A directory read the store could not answer (the driver failed: connection refused or lost, I/O error) is the
 * typed `StoreUnavailable` (503), never a defect; a defect here stays one (a bug: 500).
 */
const readErrors =
  (operation: string) => <A, R>(self: Effect.Effect<A, SqlError, R>): Effect.Effect<A, StoreUnavailable, R> =>
    Effect.mapError(self, (cause) => new StoreUnavailable({ operation, cause }))

/**
 * What readiness knows about writes: the last write that failed, until an append succeeds again (an `enqueue`
 * commit, an import, a replay, or the probe of `StoreHealth.check`). Every write records its failure; only appends
 * clear it, so that an update that still fits (a claim, a counter) does not hide a disk that cannot grow.
 */
interface WriteHealth {
  readonly failure: () => StoreUnavailable | undefined
  /** Records the failure of a write (`StoreUnavailable` only; `LeaseLost` is an answer, not a failure). */
  readonly track: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `track`, and a success clears the recorded failure. */
  readonly trackAppend: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Records the end of a write given as an `Exit` (`append`: a success clears the recorded failure). */
  readonly record: (exit: Exit.Exit<unknown, unknown>, append: boolean) => void
  readonly failed: (error: StoreUnavailable) => void
}

const makeWriteHealth = (): WriteHealth => {
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

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const toBytes = (value: unknown): Uint8Array => {
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === "string") return new TextEncoder().encode(value)
  return new Uint8Array(0)
}

const num = (value: unknown): number => (typeof value === "number" ? value : Number(value))
const numOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : num(value))
const strOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : String(value))

/** PostgreSQL text cannot hold NUL: free text that may come from a region's answer is stored with U+FFFD instead. */
const safeText = (value: string | null): string | null =>
  value === null ? null : value.replaceAll(String.fromCharCode(0), "\uFFFD")

const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

const payloadColumns =
  "id, mailbox, provider, region, integration_id, method, path, headers, body, received_at, delivery_id, attempts, next_attempt_at, last_error"
const copyColumns = "mailbox, provider, region, integration_id, method, path, headers, body, received_at, delivery_id"

const toStored = (row: any): StoredPayload => ({
  id: num(row.id),
  mailbox: row.mailbox,
  provider: row.provider,
  region: row.region as RegionName,
  integrationId: numOrNull(row.integration_id) as IntegrationId | null,
  method: row.method,
  path: row.path,
  headers: JSON.parse(row.headers),
  body: toBytes(row.body),
  receivedAt: num(row.received_at),
  deliveryId: row.delivery_id,
  attempts: num(row.attempts),
  nextAttemptAt: num(row.next_attempt_at),
  lastError: strOrNull(row.last_error)
})

const toDeadLetter = (row: any): DeadLetter => ({
  ...toStored(row),
  deadAt: num(row.dead_at),
  reason: row.reason,
  lastStatus: numOrNull(row.last_status),
  lastBody: strOrNull(row.last_body)
})

/**
 * A transaction runner. On SQLite it opens `BEGIN IMMEDIATE` (the write lock is taken up front, so another process
 * — e.g. the CLI replaying dead letters — waits on `busy_timeout` instead of failing with `SQLITE_BUSY_SNAPSHOT`);
 * on PostgreSQL it is `sql.withTransaction` (READ COMMITTED).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTransaction = (
  sql: SqlClient.SqlClient
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R> =>
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

// ---------------------------------------------------------------------------------------------------------------
// directory
// ---------------------------------------------------------------------------------------------------------------

const toIntegration = (row: any): Integration => {
  const metadata: { webhookSecret?: Redacted.Redacted<string>; sharedSecret?: Redacted.Redacted<string> } = {}
  if (row.webhook_secret !== null && row.webhook_secret !== undefined) {
    metadata.webhookSecret = Redacted.make(row.webhook_secret)
  }
  if (row.shared_secret !== null && row.shared_secret !== undefined) {
    metadata.sharedSecret = Redacted.make(row.shared_secret)
  }
  return new Integration({
    id: num(row.id) as IntegrationId,
    provider: row.provider,
    externalId: row.external_id,
    status: row.status,
    metadata
  }, { disableValidation: true })
}

const toRegion = (row: any): Region =>
  new Region(
    row.secret === null || row.secret === undefined
      ? { name: row.name, url: row.url }
      : { name: row.name, url: row.url, secret: Redacted.make(row.secret) },
    { disableValidation: true }
  )

const toOrganization = (row: any): Organization =>
  new Organization({ id: num(row.id) as OrganizationId, slug: row.slug, region: row.region }, {
    disableValidation: true
  })

/** Last entry wins for a repeated key, as in the memory store's maps; `seq` is the index of that last entry. */
const lastWins = <A, K>(items: ReadonlyArray<A>, key: (a: A) => K): Array<readonly [A, number]> => {
  const map = new Map<K, readonly [A, number]>()
  items.forEach((item, i) => map.set(key(item), [item, i]))
  return Array.from(map.values())
}

const makeDirectory = (
  sql: SqlClient.SqlClient,
  transaction: ReturnType<typeof makeTransaction>,
  health: WriteHealth
) => {
  // the read hot path (every webhook): fixed SQL texts, no statement compiler
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const query = (text: string) => {
    let n = 0
    const dialectText = pg ? text.replace(/\?/g, () => `$${++n}`) : text
    return (params: ReadonlyArray<unknown>) => sql.unsafe<any>(dialectText, params)
  }
  const integrationColumns = "id, provider, external_id, status, webhook_secret, shared_secret"
  const byIdQuery = query(`SELECT ${integrationColumns} FROM integrations WHERE id = ?`)
  const byExternalIdQuery = query(
    `SELECT ${integrationColumns} FROM integrations WHERE provider = ? AND external_id = ? ORDER BY seq DESC LIMIT 1`
  )
  const activeQuery = query(
    `SELECT organization_id FROM organization_integrations WHERE integration_id = ? AND status = 'active' ORDER BY seq`
  )
  const regionQuery = query(`SELECT name, url, secret FROM regions WHERE name = ?`)
  const orgsQueries = new Map<number, (params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, SqlError>>()
  const orgsQuery = (count: number) => {
    let q = orgsQueries.get(count)
    if (q === undefined) {
      q = query(`SELECT id, slug, region FROM organizations WHERE id IN (${Array(count).fill("?").join(", ")})`)
      if (orgsQueries.size < 64) orgsQueries.set(count, q)
    }
    return q
  }

  const importDirectory = (directory: Directory) =>
    transaction(Effect.gen(function*() {
      yield* sql`DELETE FROM organization_integrations`
      yield* sql`DELETE FROM integrations`
      yield* sql`DELETE FROM organizations`
      yield* sql`DELETE FROM regions`
      const regions = lastWins(directory.regions, (r) => r.name).map(([r, seq]) => ({
        name: r.name,
        url: r.url,
        secret: r.secret === undefined ? null : Redacted.value(r.secret),
        seq
      }))
      const organizations = lastWins(directory.organizations, (o) => o.id).map(([o]) => ({
        id: o.id,
        slug: o.slug,
        region: o.region
      }))
      const integrations = lastWins(directory.integrations, (i) => i.id).map(([i, seq]) => ({
        id: i.id,
        provider: i.provider,
        external_id: i.externalId,
        status: i.status,
        webhook_secret: i.metadata.webhookSecret === undefined ? null : Redacted.value(i.metadata.webhookSecret),
        shared_secret: i.metadata.sharedSecret === undefined ? null : Redacted.value(i.metadata.sharedSecret),
        seq
      }))
      const links = directory.organizationIntegrations.map((l, seq) => ({
        seq,
        organization_id: l.organizationId,
        integration_id: l.integrationId,
        status: l.status
      }))
      for (const rows of chunks(regions, 200)) yield* sql`INSERT INTO regions ${sql.insert(rows)}`
      for (const rows of chunks(organizations, 200)) yield* sql`INSERT INTO organizations ${sql.insert(rows)}`
      for (const rows of chunks(integrations, 200)) yield* sql`INSERT INTO integrations ${sql.insert(rows)}`
      for (const rows of chunks(links, 200)) yield* sql`INSERT INTO organization_integrations ${sql.insert(rows)}`
    })).pipe(storeErrors("importDirectory"), health.trackAppend)

  const integrations = IntegrationRepo.of({
    byId: (id) =>
      byIdQuery([id]).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toIntegration)),
        readErrors("IntegrationRepo.byId")
      ),
    byExternalId: (provider, externalId) =>
      byExternalIdQuery([provider, externalId]).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toIntegration)),
        readErrors("IntegrationRepo.byExternalId")
      )
  })

  const orgs = OrgRepo.of({
    activeOrganizationIds: (integrationId) =>
      activeQuery([integrationId]).pipe(
        Effect.map((rows) => rows.map((row) => num(row.organization_id) as OrganizationId)),
        readErrors("OrgRepo.activeOrganizationIds")
      ),
    byIds: (ids) =>
      ids.length === 0
        ? Effect.succeed([])
        : Effect.forEach(
          chunks(Array.from(new Set(ids)), 500),
          (chunk) => orgsQuery(chunk.length)(chunk)
        ).pipe(
          Effect.map((results) => {
            const found = new Map<number, Organization>()
            for (const rows of results) {
              for (const row of rows) found.set(num(row.id), toOrganization(row))
            }
            return ids.flatMap((id) => {
              const org = found.get(id)
              return org === undefined ? [] : [org]
            })
          }),
          readErrors("OrgRepo.byIds")
        )
  })

  const regions = RegionDirectory.of({
    byName: (name) =>
      regionQuery([name]).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRegion)),
        readErrors("RegionDirectory.byName")
      ),
    all: sql`SELECT name, url, secret FROM regions`.pipe(
      Effect.map((rows) => rows.map(toRegion).sort((a, b) => compareStrings(a.name, b.name))),
      readErrors("RegionDirectory.all")
    )
  })

  return { integrations, orgs, regions, store: DirectoryStore.of({ importDirectory }) }
}

// ---------------------------------------------------------------------------------------------------------------
// volume gate
// ---------------------------------------------------------------------------------------------------------------

const makeVolumeGate = (sql: SqlClient.SqlClient, health: WriteHealth) =>
  VolumeGate.of({
    // One UPSERT (atomic on both dialects, row-locked on PostgreSQL): the rule of `Memory.volumeHit`. Every SET
    // expression reads the old row; `switched` is stored so that RETURNING can report it.
    hit: (key, now, policy, count = 1) => {
      const window = Math.floor(now / policy.windowMs)
      const until = now + policy.holdMs
      const firstBucketed = count > policy.limit
      const hits =
        sql`(CASE WHEN volume_counters.window_index = ${window} THEN volume_counters.hits + ${count} ELSE ${count} END)`
      return sql`INSERT INTO volume_counters (key, window_index, hits, bucketed_until, switched)
        VALUES (${key}, ${window}, ${count}, ${firstBucketed ? until : null}, ${firstBucketed ? 1 : 0})
        ON CONFLICT (key) DO UPDATE SET
          window_index = ${window},
          hits = ${hits},
          bucketed_until = CASE
            WHEN volume_counters.bucketed_until IS NOT NULL AND volume_counters.bucketed_until > ${now}
              THEN volume_counters.bucketed_until
            WHEN ${hits} > ${policy.limit} THEN ${until}
            ELSE NULL END,
          switched = CASE
            WHEN volume_counters.bucketed_until IS NOT NULL AND volume_counters.bucketed_until > ${now} THEN 0
            WHEN ${hits} > ${policy.limit}
              THEN (CASE WHEN volume_counters.bucketed_until IS NULL THEN 1 ELSE 0 END)
            ELSE (CASE WHEN volume_counters.bucketed_until IS NULL THEN 0 ELSE 1 END) END
        RETURNING bucketed_until, switched`.pipe(
        Effect.map((rows) => ({
          bucketed: rows[0].bucketed_until !== null,
          switched: num(rows[0].switched) === 1
        })),
        storeErrors("VolumeGate.hit"),
        health.track
      )
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// outbox
// ---------------------------------------------------------------------------------------------------------------

/** Runs one SQL text with its parameters (on a reserved connection, or through the client). */
type Execute = (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<unknown, SqlError>

/**
 * The write of one group commit as SQL texts with their parameters (texts cached per row count: the hot path skips
 * the statement compiler). Payloads first, then the mailbox upserts sorted by name (one lock order on PostgreSQL).
 * On PostgreSQL a batch of up to 400 payloads is ONE statement (`WITH … INSERT payloads … INSERT mailboxes … ON
 * CONFLICT`): atomic on its own, one round trip, no BEGIN/COMMIT.
 */
const makeBatchWriter = (sql: SqlClient.SqlClient) => {
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const placeholders = (rows: number, columns: number, extra: string, offset: number) => {
    const out: Array<string> = []
    let n = offset
    for (let r = 0; r < rows; r++) {
      const row: Array<string> = []
      for (let c = 0; c < columns; c++) row.push(pg ? `$${++n}` : "?")
      out.push(`(${row.join(", ")}${extra})`)
    }
    return out.join(", ")
  }
  const cached = (make: (rows: number, boxes: number) => string) => {
    const texts = new Map<string, string>()
    return (rows: number, boxes: number) => {
      const key = `${rows}/${boxes}`
      let text = texts.get(key)
      if (text === undefined) {
        text = make(rows, boxes)
        if (texts.size < 256) texts.set(key, text)
      }
      return text
    }
  }
  const insertPayloads = (rows: number, offset: number) =>
    `INSERT INTO outbox_payloads (mailbox, provider, region, integration_id, method, path, headers, body, received_at,
      delivery_id, next_attempt_at, attempts) VALUES ${placeholders(rows, 11, ", 0", offset)}`
  const upsertMailboxes = (rows: number, offset: number) =>
    `INSERT INTO outbox_mailboxes (mailbox, region, depth, next_attempt_at) VALUES ${placeholders(rows, 4, "", offset)}
      ON CONFLICT (mailbox) DO UPDATE SET depth = outbox_mailboxes.depth + excluded.depth`
  const payloadsText = cached((rows) => insertPayloads(rows, 0))
  const mailboxesText = cached((_, boxes) => upsertMailboxes(boxes, 0))
  const combinedText = cached((rows, boxes) =>
    `WITH payloads AS (${insertPayloads(rows, 0)}) ${upsertMailboxes(boxes, rows * 11)}`
  )

  const payloadParams = (chunk: ReadonlyArray<NewPayload>, params: Array<unknown>) => {
    for (const p of chunk) {
      params.push(
        p.mailbox,
        p.provider,
        p.region,
        p.integrationId,
        p.method,
        p.path,
        JSON.stringify(p.headers),
        toBuffer(p.body),
        p.receivedAt,
        p.deliveryId,
        p.receivedAt
      )
    }
    return params
  }
  const mailboxParams = (payloads: ReadonlyArray<NewPayload>, params: Array<unknown>) => {
    // a new mailbox row is due at the receivedAt of its first payload (as in memory)
    const boxes = new Map<string, { mailbox: string; region: string; depth: number; due: number }>()
    for (const p of payloads) {
      const box = boxes.get(p.mailbox)
      if (box === undefined) boxes.set(p.mailbox, { mailbox: p.mailbox, region: p.region, depth: 1, due: p.receivedAt })
      else box.depth += 1
    }
    const sorted = Array.from(boxes.values()).sort((a, b) => compareStrings(a.mailbox, b.mailbox))
    for (const b of sorted) params.push(b.mailbox, b.region, b.depth, b.due)
    return sorted.length
  }

  /** The statements of one batch; `single` when it is one statement (no transaction needed). */
  return (payloads: ReadonlyArray<NewPayload>): {
    readonly single: boolean
    readonly steps: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]>
  } => {
    if (pg && payloads.length <= 400) {
      const params = payloadParams(payloads, [])
      const boxes = mailboxParams(payloads, params)
      return { single: true, steps: [[combinedText(payloads.length, boxes), params]] }
    }
    const steps: Array<readonly [string, ReadonlyArray<unknown>]> = []
    for (const chunk of chunks(payloads, 400)) steps.push([payloadsText(chunk.length, 0), payloadParams(chunk, [])])
    const params: Array<unknown> = []
    const boxes = mailboxParams(payloads, params)
    // at most 4 parameters per mailbox, at most one mailbox per payload: 400 × 4 stays under every limit
    for (let i = 0; i < boxes; i += 400) {
      const n = Math.min(400, boxes - i)
      steps.push([mailboxesText(0, n), params.slice(i * 4, (i + n) * 4)])
    }
    return { single: false, steps }
  }
}

const runSteps = (steps: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]>, execute: Execute) =>
  Effect.forEach(steps, ([text, params]) => execute(text, params), { discard: true })

/**
 * One group commit on a reserved connection, without the client's statement and span machinery (the hot path of
 * every webhook). SQLite: `BEGIN IMMEDIATE`; PostgreSQL: one statement, or `BEGIN` (READ COMMITTED) for a large
 * batch. Rolled back on any failure, including a failed COMMIT.
 */
const makeCommitter = (sql: SqlClient.SqlClient) => {
  const plan = makeBatchWriter(sql)
  const begin = sql.onDialectOrElse({ pg: () => "BEGIN", orElse: () => "BEGIN IMMEDIATE" })
  return (payloads: ReadonlyArray<NewPayload>): Effect.Effect<void, SqlError> =>
    Effect.scoped(Effect.flatMap(sql.reserve, (conn): Effect.Effect<void, SqlError> => {
      const run = (text: string, params: ReadonlyArray<unknown> = []) => conn.execute(text, params, undefined)
      const { single, steps } = plan(payloads)
      if (single) return runSteps(steps, run)
      return run(begin).pipe(
        Effect.zipRight(runSteps(steps, run)),
        Effect.zipRight(run("COMMIT")),
        Effect.onError(() => Effect.ignore(run("ROLLBACK"))),
        Effect.asVoid
      )
    }))
}

interface Pending {
  readonly payloads: ReadonlyArray<NewPayload>
  readonly done: Deferred.Deferred<void, StoreUnavailable>
}

/** Runs one SQL text on the batch's connection. */
type Run = (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, SqlError>

/** One write of a drain, as statements on a batch's connection: `true` done, `false` the lease was not held. */
type OutcomeSteps = (run: Run) => Effect.Effect<boolean, SqlError>

/**
 * One write of a drain as a piece of ONE PostgreSQL statement: `ctes` (placeholders `$1…` local to the piece, CTE
 * names among `lk`, `done`, `dep`, `copied`, `rd`, `ru`), renumbered and renamed when pieces are joined. The statement
 * selects `COUNT(*)` of each CTE of `refs`, in order (that is also the order the pieces run in); the write is done
 * when its `done` CTE returned a row (or always, when it has none: `release`).
 */
interface PgPiece {
  readonly key: string
  readonly ctes: string
  readonly refs: ReadonlyArray<string>
  readonly params: ReadonlyArray<unknown>
}

interface OutcomeWrite {
  readonly steps: OutcomeSteps
  readonly pg: PgPiece | undefined
}

interface PendingOutcome {
  readonly mailbox: string
  readonly owner: string
  readonly operation: string
  readonly write: OutcomeWrite
  readonly done: Deferred.Deferred<void, LeaseLost | StoreUnavailable>
}

/**
 * The drain's writes (`complete`, `retry`, `deadLetter`, `release`) as fixed SQL texts (no statement compiler on the
 * hot path).
 *
 * SQLite (statements in the batch's `BEGIN IMMEDIATE` transaction): each lease-guarded write first locks the mailbox
 * row with the guard `lease_owner = $me AND lease_until >= now`, applying its depth change; if the payload write then
 * finds nothing (unknown id, another mailbox's payload), the depth change is undone and the write reports `false`
 * (`LeaseLost`), leaving nothing behind — so one caller's refusal never rolls back the others of its batch.
 *
 * PostgreSQL (every write of a batch in ONE statement — one round trip, atomic on its own, no BEGIN/COMMIT): per write,
 * `lk` locks the mailbox row `FOR UPDATE` with the guard (READ COMMITTED re-checks it on the newest row version after
 * a lock wait), the payload write runs only when `lk` returned the row, and the depth changes only when the payload
 * write did (`dep`, on the row `lk` locked: the newest version). Writes of one statement are on distinct mailboxes.
 */
const makeOutcomeWrites = (sql: SqlClient.SqlClient) => {
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const hold = `UPDATE outbox_mailboxes SET depth = depth + ?
    WHERE mailbox = ? AND lease_owner = ? AND lease_until >= ? RETURNING mailbox`
  const unhold = `UPDATE outbox_mailboxes SET depth = depth - ? WHERE mailbox = ?`
  const deletePayload = `DELETE FROM outbox_payloads WHERE id = ? AND mailbox = ? RETURNING id`
  const retryPayload = `UPDATE outbox_payloads SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
    WHERE id = ? AND mailbox = ? RETURNING id`
  const copyDead = `INSERT INTO outbox_dead_letters (${payloadColumns}, dead_at, reason, last_status, last_body)
    SELECT ${payloadColumns}, CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT)
    FROM outbox_payloads WHERE id = ? AND mailbox = ? RETURNING id`
  const deleteById = `DELETE FROM outbox_payloads WHERE id = ?`
  // guarded on the row's own depth, never on NOT EXISTS over payloads: see OUTBOX.md, "The race"
  const releaseDelete = `DELETE FROM outbox_mailboxes WHERE mailbox = ? AND lease_owner = ? AND depth = 0`
  const releaseUpdate = `UPDATE outbox_mailboxes SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
    WHERE mailbox = ? AND lease_owner = ?`

  type Guard = { readonly mailbox: string; readonly owner: string; readonly now: number }
  const guarded =
    (lease: Guard, delta: number, write: (run: Run) => Effect.Effect<boolean, SqlError>): OutcomeSteps => (run) =>
      Effect.flatMap(run(hold, [delta, lease.mailbox, lease.owner, lease.now]), (held) => {
        if (held.length === 0) return Effect.succeed(false)
        return Effect.flatMap(
          write(run),
          (ok) => ok || delta === 0 ? Effect.succeed(ok) : Effect.as(run(unhold, [delta, lease.mailbox]), false)
        )
      })
  const noSteps: OutcomeSteps = () => Effect.die(new Error("PostgreSQL writes run as one statement"))

  // PostgreSQL pieces: $1 mailbox, $2 owner, $3 now, $4 id, then the write's own values
  const lk = `lk AS MATERIALIZED (SELECT mailbox FROM outbox_mailboxes
      WHERE mailbox = $1 AND lease_owner = $2 AND lease_until >= $3 FOR UPDATE)`
  const dep = `dep AS (UPDATE outbox_mailboxes SET depth = depth - 1
      WHERE mailbox = $1 AND EXISTS (SELECT 1 FROM done) RETURNING mailbox)`
  const pgComplete = `${lk},
    done AS (DELETE FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id),
    ${dep}`
  const pgRetry = `${lk},
    done AS (UPDATE outbox_payloads SET attempts = attempts + 1, next_attempt_at = $5, last_error = $6
      WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id)`
  const pgDead = `${lk},
    copied AS (INSERT INTO outbox_dead_letters (${payloadColumns}, dead_at, reason, last_status, last_body)
      SELECT ${payloadColumns}, CAST($5 AS BIGINT), CAST($6 AS TEXT), CAST($7 AS INTEGER), CAST($8 AS TEXT)
      FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id),
    done AS (DELETE FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM copied)
      RETURNING id),
    ${dep}`
  // the row is deleted when its own depth is 0 (a concurrent enqueue's upsert makes the delete wait and then keep it),
  // else given back; `ru` skips a row `rd` deleted
  const pgRelease = `rd AS (DELETE FROM outbox_mailboxes WHERE mailbox = $1 AND lease_owner = $2 AND depth = 0
      RETURNING mailbox),
    ru AS (UPDATE outbox_mailboxes SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL
      WHERE mailbox = $1 AND lease_owner = $2 AND NOT EXISTS (SELECT 1 FROM rd) RETURNING mailbox)`
  const piece = (key: string, ctes: string, refs: ReadonlyArray<string>, params: ReadonlyArray<unknown>) => ({
    steps: noSteps,
    pg: { key, ctes, refs, params }
  })

  if (pg) {
    return {
      complete: (lease: Guard, id: number): OutcomeWrite =>
        piece("c", pgComplete, ["done", "dep"], [lease.mailbox, lease.owner, lease.now, id]),
      retry: (lease: Guard, id: number, nextAttemptAt: number, error: string): OutcomeWrite =>
        piece("r", pgRetry, ["done"], [lease.mailbox, lease.owner, lease.now, id, nextAttemptAt, safeText(error)]),
      deadLetter: (
        lease: Guard,
        id: number,
        reason: string,
        lastStatus: number | null,
        lastBody: string | null
      ): OutcomeWrite =>
        piece("d", pgDead, ["done", "dep"], [
          lease.mailbox,
          lease.owner,
          lease.now,
          id,
          lease.now,
          safeText(reason),
          lastStatus,
          safeText(lastBody)
        ]),
      release: (lease: Guard, nextAttemptAt: number): OutcomeWrite =>
        piece("l", pgRelease, ["rd", "ru"], [lease.mailbox, lease.owner, nextAttemptAt])
    }
  }

  const steps = (s: OutcomeSteps): OutcomeWrite => ({ steps: s, pg: undefined })
  return {
    complete: (lease: Guard, id: number) =>
      steps(
        guarded(lease, -1, (run) => Effect.map(run(deletePayload, [id, lease.mailbox]), (rows) => rows.length > 0))
      ),
    retry: (lease: Guard, id: number, nextAttemptAt: number, error: string) =>
      steps(guarded(lease, 0, (run) =>
        Effect.map(
          run(retryPayload, [nextAttemptAt, safeText(error), id, lease.mailbox]),
          (rows) => rows.length > 0
        ))),
    deadLetter: (lease: Guard, id: number, reason: string, lastStatus: number | null, lastBody: string | null) =>
      steps(guarded(lease, -1, (run) =>
        Effect.flatMap(
          run(copyDead, [lease.now, safeText(reason), lastStatus, safeText(lastBody), id, lease.mailbox]),
          (rows) => rows.length === 0 ? Effect.succeed(false) : Effect.as(run(deleteById, [id]), true)
        ))),
    release: (lease: Guard, nextAttemptAt: number) =>
      steps((run) =>
        run(releaseDelete, [lease.mailbox, lease.owner]).pipe(
          Effect.zipRight(run(releaseUpdate, [nextAttemptAt, lease.mailbox, lease.owner])),
          Effect.as(true)
        )
      )
  }
}

const pgTexts = new Map<string, string>()

/** Joins PostgreSQL pieces (on distinct mailboxes, in lock order) into one statement; small shapes are cached. */
const pgStatement = (pieces: ReadonlyArray<PgPiece>): readonly [string, ReadonlyArray<unknown>] => {
  const params: Array<unknown> = []
  for (const p of pieces) params.push(...p.params)
  const key = pieces.map((p) => p.key).join("")
  let text = pgTexts.get(key)
  if (text === undefined) {
    const ctes: Array<string> = []
    const columns: Array<string> = []
    let offset = 0
    pieces.forEach((p, i) => {
      const at = offset
      ctes.push(
        p.ctes
          .replace(/\$(\d+)/g, (_, d: string) => `$${at + Number(d)}`)
          .replace(/\b(lk|done|dep|copied|rd|ru)\b/g, (name: string) => `${name}_${i}`)
      )
      for (const r of p.refs) columns.push(`(SELECT COUNT(*) FROM ${r}_${i}) AS ${r}_${i}`)
      offset += p.params.length
    })
    text = `WITH ${ctes.join(",\n")}\nSELECT ${columns.join(", ")}`
    if (pieces.length <= 16 && pgTexts.size < 256) pgTexts.set(key, text)
  }
  return [text, params]
}

/**
 * The outbox statements, without transactions, for tests that must interleave them with other connections (the
 * mailbox-row race of `design/OUTBOX.md`). Run them inside `sql.withTransaction`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutboxStatements {
  /** The whole write of one group commit: payloads, then the mailbox upserts (sorted by name: one lock order). */
  readonly writeBatch: (payloads: ReadonlyArray<NewPayload>) => Effect.Effect<void, SqlError>
  /** `release`'s statements: delete the row guarded on its own depth, else give it back. */
  readonly releaseRows: (mailbox: string, owner: string, nextAttemptAt: number) => Effect.Effect<void, SqlError>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeStatements = (sql: SqlClient.SqlClient): OutboxStatements => {
  const plan = makeBatchWriter(sql)
  const writeBatch = (payloads: ReadonlyArray<NewPayload>) =>
    runSteps(plan(payloads).steps, (text, params) => sql.unsafe(text, params))

  // exactly `release`'s statements (on PostgreSQL its one statement), run through the client
  const writes = makeOutcomeWrites(sql)
  const run: Run = (text, params) => sql.unsafe(text, params)
  const releaseRows = (mailbox: string, owner: string, nextAttemptAt: number): Effect.Effect<unknown, SqlError> => {
    const write = writes.release({ mailbox, owner, now: 0 }, nextAttemptAt)
    if (write.pg === undefined) return write.steps(run)
    const [text, params] = pgStatement([write.pg])
    return run(text, params)
  }

  return { writeBatch, releaseRows: (m, o, n) => Effect.asVoid(releaseRows(m, o, n)) }
}

/**
 * Recreates the missing mailbox row of every payload that has none (it should find nothing: a non-zero count is a
 * bug signal) and returns how many rows it created. The rows are due at once. Run it periodically.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sweepOrphans = (now: number): Effect.Effect<number, StoreUnavailable, SqlClient.SqlClient> =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`INSERT INTO outbox_mailboxes (mailbox, region, depth, next_attempt_at)
      SELECT p.mailbox, MIN(p.region), COUNT(*), CAST(${now} AS BIGINT) FROM outbox_payloads p
      WHERE NOT EXISTS (SELECT 1 FROM outbox_mailboxes m WHERE m.mailbox = p.mailbox)
      GROUP BY p.mailbox
      ON CONFLICT (mailbox) DO UPDATE SET depth = outbox_mailboxes.depth + excluded.depth
      RETURNING mailbox`.pipe(Effect.map((rows) => rows.length))
  ).pipe(storeErrors("sweepOrphans"))

/** One turn of the event loop (after pending I/O callbacks). */
const nextTick: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const makeOutbox = (
  sql: SqlClient.SqlClient,
  transaction: ReturnType<typeof makeTransaction>,
  options: StoreOptions,
  health: WriteHealth
) =>
  Effect.gen(function*() {
    const maxBatch = Math.max(1, options.maxBatch ?? 256)

    // Group commit, leader style: a caller that finds no commit running writes everything pending (its own payloads
    // and whatever arrived meanwhile) in one transaction on its own fiber; callers that arrive while a commit runs
    // queue up and wait. When a commit ends with more pending, a fiber in the layer's scope writes the next batch.
    // At concurrency 1 there is no hand-off at all; under load every transaction carries a whole batch.
    const commit = makeCommitter(sql)
    const scope = yield* Effect.scope
    const pending: Array<Pending> = []
    let writing = false
    let closed = false
    const closedError = () => new StoreUnavailable({ operation: "enqueue", cause: new Error("store closed") })

    const writeOne = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function*() {
        const payloads = batch.length === 1 ? batch[0].payloads : batch.flatMap((p) => p.payloads)
        const exit = yield* Effect.exit(storeErrors("enqueue")(commit(payloads)))
        health.record(exit, true)
        options.onCommit?.({ requests: batch.length, payloads: payloads.length, ok: Exit.isSuccess(exit) })
        for (const p of batch) Deferred.unsafeDone(p.done, exit)
      })

    /**
     * Lets the event loop run once (`setImmediate`: the requests whose I/O is ready join the batch — with the
     * synchronous SQLite driver nothing else could), writes one batch, then hands the rest (if any) to a fiber of
     * the layer's scope. Runs uninterruptibly.
     */
    const yieldFirst = sql.onDialectOrElse({ pg: () => Effect.void, orElse: () => nextTick })
    const lead: Effect.Effect<void> = Effect.zipRight(
      yieldFirst,
      Effect.suspend(() => {
        const batch = pending.splice(0, maxBatch)
        return writeOne(batch).pipe(
          Effect.zipRight(Effect.suspend(() => {
            if (pending.length === 0 || closed) {
              writing = false
              return Effect.void
            }
            return Effect.asVoid(Effect.forkIn(Effect.uninterruptible(lead), scope))
          }))
        )
      })
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const p of pending.splice(0)) Deferred.unsafeDone(p.done, Exit.fail(closedError()))
      })
    )

    const enqueue = (payloads: ReadonlyArray<NewPayload>): Effect.Effect<void, StoreUnavailable> =>
      payloads.length === 0 ? Effect.void : Effect.suspend(() => {
        if (closed) return Effect.fail(closedError())
        const done = Deferred.unsafeMake<void, StoreUnavailable>(FiberId.none)
        pending.push({ payloads, done })
        if (writing) return Deferred.await(done)
        writing = true
        return Effect.zipRight(Effect.uninterruptible(lead), Deferred.await(done))
      })

    const lost = (lease: { readonly mailbox: string; readonly owner: string }) =>
      new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner })

    // Group commit for the drain's writes, leader style as for `enqueue`: concurrent `complete` / `retry` /
    // `deadLetter` / `release` calls (the up to `concurrency` drains of a worker) share one transaction. Each write
    // keeps its own lease guard, evaluated inside the transaction, and its own answer (`LeaseLost` for its own guard);
    // every caller is answered only after the COMMIT, and all of them with `StoreUnavailable` when it fails. Writes
    // run in mailbox-name order: the lock order of the enqueue batches (no deadlock between them on PostgreSQL).
    const writes = makeOutcomeWrites(sql)
    const begin = sql.onDialectOrElse({ pg: () => "BEGIN", orElse: () => "BEGIN IMMEDIATE" })
    const outcomes: Array<PendingOutcome> = []
    let outcomeWriting = false

    const runOutcomes = (batch: ReadonlyArray<PendingOutcome>) =>
      Effect.scoped(Effect.flatMap(sql.reserve, (conn) => {
        const run: Run = (text, params) => conn.execute(text, params, undefined)
        const ordered = batch.length === 1 ? batch : batch.slice().sort((a, b) => compareStrings(a.mailbox, b.mailbox))
        const results = new Map<PendingOutcome, boolean>()
        if (ordered[0].write.pg === undefined) {
          return run(begin, []).pipe(
            Effect.zipRight(Effect.forEach(ordered, (p) => Effect.map(p.write.steps(run), (ok) => results.set(p, ok)), {
              discard: true
            })),
            Effect.zipRight(run("COMMIT", [])),
            Effect.onError(() => Effect.ignore(run("ROLLBACK", []))),
            Effect.as(results)
          )
        }
        // PostgreSQL: one statement per round, each round with every mailbox at most once (a second write of one
        // mailbox goes to the next round, in arrival order); several rounds share a transaction
        const rounds: Array<Array<PendingOutcome>> = []
        const seen = new Map<string, number>()
        for (const p of ordered) {
          const round = seen.get(p.mailbox) ?? 0
          seen.set(p.mailbox, round + 1)
          const list = rounds[round] ?? (rounds[round] = [])
          list.push(p)
        }
        const statements = Effect.forEach(rounds, (round) => {
          const [text, params] = pgStatement(round.map((p) => p.write.pg!))
          return Effect.map(run(text, params), (rows) => {
            const row = rows[0] ?? {}
            round.forEach((p, i) => {
              const done = p.write.pg!.refs.includes("done") ? num(row[`done_${i}`] ?? 0) > 0 : true
              results.set(p, done)
            })
          })
        }, { discard: true })
        if (rounds.length === 1) return Effect.as(statements, results)
        return run(begin, []).pipe(
          Effect.zipRight(statements),
          Effect.zipRight(run("COMMIT", [])),
          Effect.onError(() => Effect.ignore(run("ROLLBACK", []))),
          Effect.as(results)
        )
      }))

    const writeOutcomes = (batch: ReadonlyArray<PendingOutcome>) =>
      Effect.map(Effect.exit(runOutcomes(batch)), (exit) => {
        options.onOutcomeCommit?.({ writes: batch.length, ok: Exit.isSuccess(exit) })
        if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
          health.failed(new StoreUnavailable({ operation: "drain writes", cause: Cause.squash(exit.cause) }))
        }
        for (const p of batch) {
          if (Exit.isSuccess(exit)) {
            Deferred.unsafeDone(
              p.done,
              exit.value.get(p) === true ? Exit.void : Exit.fail(lost(p))
            )
          } else {
            Deferred.unsafeDone(
              p.done,
              Exit.fail(new StoreUnavailable({ operation: p.operation, cause: Cause.squash(exit.cause) }))
            )
          }
        }
      })

    const leadOutcomes: Effect.Effect<void> = Effect.zipRight(
      yieldFirst,
      Effect.suspend(() => {
        const batch = outcomes.splice(0, maxBatch)
        return writeOutcomes(batch).pipe(
          Effect.zipRight(Effect.suspend(() => {
            if (outcomes.length === 0 || closed) {
              outcomeWriting = false
              return Effect.void
            }
            return Effect.asVoid(Effect.forkIn(Effect.uninterruptible(leadOutcomes), scope))
          }))
        )
      })
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const p of outcomes.splice(0)) {
          Deferred.unsafeDone(
            p.done,
            Exit.fail(new StoreUnavailable({ operation: p.operation, cause: new Error("store closed") }))
          )
        }
      })
    )

    const submit = (
      lease: { readonly mailbox: string; readonly owner: string },
      operation: string,
      write: OutcomeWrite
    ): Effect.Effect<void, LeaseLost | StoreUnavailable> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(new StoreUnavailable({ operation, cause: new Error("store closed") }))
        const done = Deferred.unsafeMake<void, LeaseLost | StoreUnavailable>(FiberId.none)
        outcomes.push({ mailbox: lease.mailbox, owner: lease.owner, operation, write, done })
        if (outcomeWriting) return Deferred.await(done)
        outcomeWriting = true
        return Effect.zipRight(Effect.uninterruptible(leadOutcomes), Deferred.await(done))
      })

    const requireRow = <E>(rows: ReadonlyArray<unknown>, error: E) =>
      rows.length === 0 ? Effect.fail(error) : Effect.void

    return Outbox.of({
      enqueue,
      claim: ({ leaseMs, limit, now, owner }) =>
        (limit <= 0 ? Effect.succeed<ReadonlyArray<any>>([]) : sql.onDialectOrElse<
          Effect.Effect<ReadonlyArray<any>, SqlError>,
          never,
          Effect.Effect<ReadonlyArray<any>, SqlError>
        >({
          pg: () =>
            sql`UPDATE outbox_mailboxes m SET lease_owner = ${owner}, lease_until = ${now + leaseMs}
              FROM (SELECT mailbox FROM outbox_mailboxes
                    WHERE next_attempt_at <= ${now} AND (lease_until IS NULL OR lease_until < ${now})
                    ORDER BY next_attempt_at, mailbox LIMIT ${limit}
                    FOR UPDATE SKIP LOCKED) c
              WHERE m.mailbox = c.mailbox
              RETURNING m.mailbox, m.next_attempt_at`,
          orElse: () =>
            sql`UPDATE outbox_mailboxes SET lease_owner = ${owner}, lease_until = ${now + leaseMs}
              WHERE mailbox IN (SELECT mailbox FROM outbox_mailboxes
                    WHERE next_attempt_at <= ${now} AND (lease_until IS NULL OR lease_until < ${now})
                    ORDER BY next_attempt_at, mailbox LIMIT ${limit})
              RETURNING mailbox, next_attempt_at`
        })).pipe(
          Effect.map((rows) =>
            rows
              .map((r: any) => ({ mailbox: r.mailbox as string, due: num(r.next_attempt_at) }))
              .sort((a, b) => a.due - b.due || compareStrings(a.mailbox, b.mailbox))
              .map((r) => r.mailbox)
          ),
          storeErrors("claim"),
          health.track
        ),
      renew: (lease, leaseMs) =>
        sql`UPDATE outbox_mailboxes SET lease_until = ${lease.now + leaseMs}
          WHERE mailbox = ${lease.mailbox} AND lease_owner = ${lease.owner} AND lease_until >= ${lease.now}
          RETURNING mailbox`.pipe(
          Effect.flatMap((rows) => requireRow(rows, lost(lease))),
          storeErrors("renew"),
          health.track
        ),
      head: (mailbox, limit) =>
        (limit <= 0 ?
          Effect.succeed<ReadonlyArray<any>>([]) :
          sql`SELECT ${sql.literal(payloadColumns)} FROM outbox_payloads
          WHERE mailbox = ${mailbox} ORDER BY id LIMIT ${limit}`).pipe(
            Effect.map((rows) => rows.map(toStored)),
            storeErrors("head")
          ),
      complete: (lease, id) => submit(lease, "complete", writes.complete(lease, id)),
      retry: (lease, id, { error, nextAttemptAt }) =>
        submit(lease, "retry", writes.retry(lease, id, nextAttemptAt, error)),
      deadLetter: (lease, id, { lastBody, lastStatus, reason }) =>
        submit(lease, "deadLetter", writes.deadLetter(lease, id, reason, lastStatus, lastBody)),
      release: (lease, nextAttemptAt) =>
        submit(lease, "release", writes.release(lease, nextAttemptAt)).pipe(
          Effect.catchTag("LeaseLost", () => Effect.void)
        ),
      replay: (ids, now) =>
        transaction(Effect.gen(function*() {
          const selected = ids === "all"
            ? yield* sql`SELECT id, mailbox, region FROM outbox_dead_letters ORDER BY id`
            : ids.length === 0
            ? []
            : (yield* Effect.forEach(
              chunks(Array.from(new Set(ids)), 500),
              (chunk) => sql`SELECT id, mailbox, region FROM outbox_dead_letters WHERE ${sql.in("id", chunk)}`
            )).flat()
          const rows = selected
            .map((r: any) => ({ id: num(r.id), mailbox: r.mailbox as string, region: r.region as string }))
            .sort((a, b) => a.id - b.id)
          for (const chunk of chunks(rows.map((r) => r.id), 500)) {
            // new ids in the order of the old ones: the tail of each mailbox
            yield* sql`INSERT INTO outbox_payloads (${sql.literal(copyColumns)}, attempts, next_attempt_at)
              SELECT ${sql.literal(copyColumns)}, 0, CAST(${now} AS BIGINT) FROM outbox_dead_letters
              WHERE ${sql.in("id", chunk)} ORDER BY id`
            yield* sql`DELETE FROM outbox_dead_letters WHERE ${sql.in("id", chunk)}`
          }
          const boxes = new Map<string, { mailbox: string; region: string; depth: number; due: number }>()
          for (const r of rows) {
            const box = boxes.get(r.mailbox)
            if (box === undefined) boxes.set(r.mailbox, { mailbox: r.mailbox, region: r.region, depth: 1, due: now })
            else box.depth += 1
          }
          if (boxes.size > 0) {
            yield* Effect.forEach(
              chunks(Array.from(boxes.values()).sort((a, b) => compareStrings(a.mailbox, b.mailbox)), 500),
              (chunk) =>
                sql`INSERT INTO outbox_mailboxes ${
                  sql.insert(chunk.map((r) => ({
                    mailbox: r.mailbox,
                    region: r.region,
                    depth: r.depth,
                    next_attempt_at: r.due
                  })))
                } ON CONFLICT (mailbox) DO UPDATE SET depth = outbox_mailboxes.depth + excluded.depth`,
              { discard: true }
            )
          }
          return rows.length
        })).pipe(storeErrors("replay"), health.trackAppend),
      deadLetters: sql`SELECT ${
        sql.literal(payloadColumns)
      }, dead_at, reason, last_status, last_body FROM outbox_dead_letters ORDER BY id`.pipe(
        Effect.map((rows) => rows.map(toDeadLetter)),
        storeErrors("deadLetters")
      ),
      mailboxes: sql`SELECT m.mailbox, m.region, m.depth, m.next_attempt_at, m.lease_owner, m.lease_until,
          (SELECT MIN(p.received_at) FROM outbox_payloads p WHERE p.mailbox = m.mailbox) AS oldest
        FROM outbox_mailboxes m`.pipe(
        Effect.map((rows) =>
          rows
            .map((r: any): MailboxInfo => ({
              mailbox: r.mailbox,
              region: r.region as RegionName,
              depth: num(r.depth),
              oldestReceivedAt: numOrNull(r.oldest),
              nextAttemptAt: num(r.next_attempt_at),
              leasedBy: strOrNull(r.lease_owner),
              leaseUntil: numOrNull(r.lease_until)
            }))
            .sort((a, b) => compareStrings(a.mailbox, b.mailbox))
        ),
        storeErrors("mailboxes")
      )
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// layer
// ---------------------------------------------------------------------------------------------------------------

/** The key of the readiness probe's row in `volume_counters` (written and deleted in one transaction). */
const PROBE_KEY = "cellgate:readiness-probe"

const makeHealth = (
  sql: SqlClient.SqlClient,
  transaction: ReturnType<typeof makeTransaction>,
  health: WriteHealth
) => {
  const read = sql`SELECT MAX(migration_id) AS latest FROM ${sql(migrationsTable)}`.pipe(
    Effect.flatMap((rows) => {
      const latest = numOrNull(rows[0]?.latest)
      return latest === latestMigration
        ? Effect.void
        : Effect.fail(new Error(`migrations at ${latest}, expected ${latestMigration}`))
    }),
    storeErrors("StoreHealth.check")
  )
  // after a failed write: one small committed write (a row inserted and deleted again), so that readiness comes
  // back by itself once the store can write, without waiting for traffic that a 503 `/readyz` keeps away
  const probe = transaction(Effect.zipRight(
    sql`INSERT INTO volume_counters (key, window_index, hits, bucketed_until, switched)
      VALUES (${PROBE_KEY}, 0, 0, NULL, 0) ON CONFLICT (key) DO NOTHING`,
    sql`DELETE FROM volume_counters WHERE key = ${PROBE_KEY}`
  )).pipe(storeErrors("StoreHealth.probe"), health.trackAppend)
  return StoreHealth.of({
    check: Effect.zipRight(read, Effect.suspend(() => (health.failure() === undefined ? Effect.void : probe)))
  })
}

/**
 * Every store service over the `SqlClient` in context (migrations must have run).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: StoreOptions = {}): Layer.Layer<Services, never, SqlClient.SqlClient> =>
  Layer.scopedContext(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const transaction = makeTransaction(sql)
    const health = makeWriteHealth()
    const directory = makeDirectory(sql, transaction, health)
    const outbox = yield* makeOutbox(sql, transaction, options, health)
    return Context.make(IntegrationRepo, directory.integrations).pipe(
      Context.add(OrgRepo, directory.orgs),
      Context.add(RegionDirectory, directory.regions),
      Context.add(DirectoryStore, directory.store),
      Context.add(VolumeGate, makeVolumeGate(sql, health)),
      Context.add(Outbox, outbox),
      Context.add(StoreHealth, makeHealth(sql, transaction, health))
    )
  }))
