/**
 * The outbox over any `SqlClient` (SQLite or PostgreSQL), with the semantics of the memory outbox
 * (`Outbox.layerMemory`; see docs/outbox.md): `enqueue` and the drain's writes (`complete`, `retry`, `deadLetter`,
 * `release`) go through one group-commit batcher each (concurrent calls share one transaction, every caller gets its
 * own answer), claims lease whole mailboxes, and an enqueue that is durable wakes this process's worker
 * (`awaitWork`). Rows are decoded with the row schemas below.
 *
 * @since 0.2.0
 */
import type { IntegrationId, RegionName } from "@cellgate/core"
import { LeaseLost, ReplyTarget, StoreUnavailable } from "@cellgate/core"
import * as Mailbox from "@cellgate/core/Mailbox"
import * as Outbox from "@cellgate/core/Outbox"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { ParseResult, Scope } from "effect"
import { Array as Arr, Cause, Effect, Exit, Layer, Order, Schema } from "effect"
import * as GroupCommit from "./internal/groupCommit.js"
import * as PgDrainStatement from "./internal/pgDrainStatement.js"
import {
  beginText,
  byMailbox,
  Bytes,
  decodeRows,
  Headers,
  Int,
  IntOrNull,
  isPg,
  makeTransaction,
  safeText,
  storeErrors,
  toBuffer,
  WriteHealth
} from "./internal/sql.js"

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
 * @since 0.2.0
 * @category models
 */
export interface DrainCommitInfo {
  /** Writes answered by this transaction (those refused with `LeaseLost` included). */
  readonly writes: number
  /** false when the transaction failed (every write of the batch then failed with `StoreUnavailable`). */
  readonly ok: boolean
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Called after every enqueue transaction (committed or failed). */
  readonly onCommit?: ((info: CommitInfo) => void) | undefined
  /** Called after every transaction of the drain's writes (committed or failed). */
  readonly onDrainCommit?: ((info: DrainCommitInfo) => void) | undefined
  /** At most this many `enqueue` calls (and, separately, drain writes) share one transaction (default 256). */
  readonly maxBatch?: number | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// rows
// ---------------------------------------------------------------------------------------------------------------

/**
 * A row of `outbox_payloads`.
 *
 * @since 0.2.0
 * @category rows
 */
export const PayloadRow = Schema.Struct({
  id: Int,
  mailbox: Schema.String,
  provider: Schema.String,
  region: Schema.String,
  integration_id: IntOrNull,
  method: Schema.String,
  path: Schema.String,
  headers: Headers,
  body: Bytes,
  received_at: Int,
  delivery_id: Schema.String,
  attempts: Int,
  next_attempt_at: Int,
  last_error: Schema.NullOr(Schema.String),
  /** JSON (`0004_replies`). */
  reply_target: Schema.NullOr(Schema.parseJson(ReplyTarget)),
  /** The W3C `traceparent` of the ingest span (`0006_trace_context`). */
  trace_context: Schema.NullOr(Schema.String),
  /** The payload's number in its mailbox (`0007_fair_delivery`): `x-cellgate-sequence`. */
  sequence: Int,
  /** `Mailbox.tenantOf` the payload (`0007_fair_delivery`): a mailbox row made for it takes this tenant. */
  tenant: Schema.String
})

const encodeReplyTarget = Schema.encodeSync(Schema.parseJson(ReplyTarget))

/**
 * A row of `outbox_dead_letters`.
 *
 * @since 0.2.0
 * @category rows
 */
export const DeadLetterRow = Schema.Struct({
  ...PayloadRow.fields,
  dead_at: Int,
  reason: Schema.String,
  last_status: IntOrNull,
  last_body: Schema.NullOr(Schema.String)
})

/**
 * A row of `outbox_mailboxes` with the oldest `received_at` of its payloads.
 *
 * @since 0.2.0
 * @category rows
 */
export const MailboxRow = Schema.Struct({
  mailbox: Schema.String,
  region: Schema.String,
  /** What fair claims share a worker's slots by (`0007_fair_delivery`): the tenant of the row's first payload. */
  tenant: Schema.String,
  depth: Int,
  next_attempt_at: Int,
  lease_owner: Schema.NullOr(Schema.String),
  lease_until: IntOrNull,
  oldest: IntOrNull
})

/** A claimed mailbox; `tier` (fair claims on PostgreSQL): the first key of the claim order (0 within the share). */
const ClaimRow = Schema.Struct({
  mailbox: Schema.String,
  tenant: Schema.String,
  next_attempt_at: Int,
  tier: Schema.optional(Int)
})

/** A dead letter chosen for replay. */
const ReplayRow = Schema.Struct({ id: Int, mailbox: Schema.String, region: Schema.String, tenant: Schema.String })

/** A per-mailbox counter after an enqueue advanced it. */
const SequenceRow = Schema.Struct({ mailbox: Schema.String, last: Int })

const toStored = (row: typeof PayloadRow.Type): Outbox.StoredPayload => ({
  id: row.id,
  mailbox: row.mailbox,
  provider: row.provider,
  region: row.region as RegionName,
  integrationId: row.integration_id as IntegrationId | null,
  method: row.method,
  path: row.path,
  headers: row.headers,
  body: row.body,
  receivedAt: row.received_at,
  deliveryId: row.delivery_id,
  replyTarget: row.reply_target,
  traceContext: row.trace_context,
  tenant: row.tenant,
  sequence: row.sequence,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  lastError: row.last_error
})

const toDeadLetter = (row: typeof DeadLetterRow.Type): Outbox.DeadLetter => ({
  ...toStored(row),
  deadAt: row.dead_at,
  reason: row.reason,
  lastStatus: row.last_status,
  lastBody: row.last_body
})

const toMailboxInfo = (row: typeof MailboxRow.Type): Outbox.MailboxInfo => ({
  mailbox: row.mailbox,
  region: row.region as RegionName,
  tenant: row.tenant,
  depth: row.depth,
  oldestReceivedAt: row.oldest,
  nextAttemptAt: row.next_attempt_at,
  leasedBy: row.lease_owner,
  leaseUntil: row.lease_until
})

const decodePayloads = decodeRows(PayloadRow)
const decodeDeadLetters = decodeRows(DeadLetterRow)
const decodeMailboxes = decodeRows(MailboxRow)
const decodeClaims = decodeRows(ClaimRow)
const decodeReplays = decodeRows(ReplayRow)
const decodeSequences = decodeRows(SequenceRow)

/** The claim order (`Outbox.claimOrder`) of claimed rows that carry their tier: tier, then due, then name. */
const byTierThenDue = Order.combine(
  Order.mapInput(Order.number, (r: typeof ClaimRow.Type) => r.tier ?? 0),
  Order.combine(
    Order.mapInput(Order.number, (r: typeof ClaimRow.Type) => r.next_attempt_at),
    Order.mapInput(Order.string, (r: typeof ClaimRow.Type) => r.mailbox)
  )
)
const byId = Order.mapInput(Order.number, (r: { readonly id: number }) => r.id)
const mailboxOrder = byMailbox<{ readonly mailbox: string }>()

// a replayed payload keeps its `sequence` (the region sees a number below its high-water mark) and its `tenant`
const copyColumns =
  "mailbox, provider, region, integration_id, method, path, headers, body, received_at, delivery_id, reply_target, trace_context, sequence, tenant"

/**
 * One mailbox row of a batch: how many payloads it gets, due at the `receivedAt` of its first one and with that
 * one's tenant (as in memory).
 */
interface BoxCount {
  readonly mailbox: string
  readonly region: string
  readonly tenant: string
  depth: number
  readonly due: number
}

/** Counts payloads per mailbox, in mailbox-name order (the one lock order of every batched write). */
const countBoxes = (
  items: ReadonlyArray<{ readonly mailbox: string; readonly region: string; readonly tenant: string }>,
  due: (i: number) => number
): ReadonlyArray<BoxCount> => {
  const boxes = new Map<string, BoxCount>()
  items.forEach((p, i) => {
    const box = boxes.get(p.mailbox)
    if (box === undefined) {
      boxes.set(p.mailbox, { mailbox: p.mailbox, region: p.region, tenant: p.tenant, depth: 1, due: due(i) })
    } else box.depth += 1
  })
  return Arr.sort(boxes.values(), mailboxOrder)
}

// ---------------------------------------------------------------------------------------------------------------
// enqueue's statements
// ---------------------------------------------------------------------------------------------------------------

/** Runs one SQL text with its parameters (on a reserved connection, or through the client). */
type Run = (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, SqlError>

/** The write of one group commit on a connection. */
type Write = (run: Run) => Effect.Effect<void, SqlError | ParseResult.ParseError>

/** The columns an enqueue writes (`attempts` is 0). */
const insertColumns =
  "mailbox, provider, region, integration_id, method, path, headers, body, received_at, delivery_id, reply_target, trace_context, next_attempt_at, tenant, sequence"
const insertCount = 15
/** The types of `insertColumns` on PostgreSQL, where the payloads are selected from a `VALUES` list (no target). */
const insertTypes = [
  "text",
  "text",
  "text",
  "bigint",
  "text",
  "text",
  "text",
  "bytea",
  "bigint",
  "text",
  "text",
  "text",
  "bigint",
  "text",
  "bigint"
] as const

/**
 * The write of one group commit (texts cached per row count, for the life of the store: the hot path skips the
 * statement compiler). Every payload gets its `sequence` from its mailbox's counter in the same transaction
 * (docs/routing.md#fair-adaptive-delivery): the counters of the batch's mailboxes advance by their payload counts,
 * and a mailbox's payloads are numbered up to the new `last` in batch order, which is also their id order.
 *
 * On PostgreSQL a batch of up to 400 payloads is ONE statement: atomic on its own, one round trip, no BEGIN/COMMIT.
 * Its main query upserts the mailbox rows (sorted by name: one lock order) and runs first; the payload insert
 * selects from the counter upsert (`seq`, `… RETURNING last`) and sorts, so every counter row of the batch is locked
 * before the first payload id is drawn: a second gateway enqueueing into the same mailbox waits for those locks and
 * then draws later ids with later numbers (numbers and ids never interleave). A larger batch (and SQLite, in its
 * `BEGIN IMMEDIATE`) runs the same steps in the same order as statements of one transaction (mailbox rows, counters,
 * payloads), so the two kinds of batch take their locks in one order.
 */
const makeBatchWriter = (sql: SqlClient.SqlClient) => {
  const pg = isPg(sql)
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
  const insertPayloads = (rows: number) =>
    `INSERT INTO outbox_payloads (${insertColumns}, attempts) VALUES ${placeholders(rows, insertCount, ", 0", 0)}`
  const upsertMailboxes = (boxes: number, offset: number) =>
    `INSERT INTO outbox_mailboxes (mailbox, region, depth, next_attempt_at, tenant) VALUES ${
      placeholders(boxes, 5, "", offset)
    }
      ON CONFLICT (mailbox) DO UPDATE SET depth = outbox_mailboxes.depth + excluded.depth`
  const advanceCounters = (boxes: number, offset: number) =>
    `INSERT INTO outbox_sequences (mailbox, last) VALUES ${placeholders(boxes, 2, "", offset)}
      ON CONFLICT (mailbox) DO UPDATE SET last = outbox_sequences.last + excluded.last RETURNING mailbox, last`
  const payloadsText = cached((rows) => insertPayloads(rows))
  const mailboxesText = cached((_, boxes) => upsertMailboxes(boxes, 0))
  const countersText = cached((_, boxes) => advanceCounters(boxes, 0))
  // PostgreSQL: the payload rows carry `ordinal - count` (≤ 0) in the `sequence` slot, added to their counter's new
  // `last`; the ordinal literal `n` is the batch order the payloads are inserted (and their ids drawn) in
  const combinedText = cached((rows, boxes) => {
    const values: Array<string> = []
    for (let r = 0; r < rows; r++) {
      const cells = insertTypes.map((type, c) => `$${r * insertCount + c + 1}::${type}`)
      values.push(`(${r + 1}, ${cells.join(", ")})`)
    }
    const selected = insertColumns.split(", ").map((c) => (c === "sequence" ? "s.last + v.sequence" : `v.${c}`))
    return `WITH seq AS (${advanceCounters(boxes, rows * insertCount + boxes * 5)}),
    payloads AS (INSERT INTO outbox_payloads (${insertColumns}, attempts)
      SELECT ${selected.join(", ")}, 0
      FROM (VALUES ${values.join(", ")}) AS v (n, ${insertColumns})
      JOIN seq s ON s.mailbox = v.mailbox ORDER BY v.n)
    ${upsertMailboxes(boxes, rows * insertCount)}`
  })

  /** One batch's mailboxes, and each payload's tenant and place in its mailbox (1, 2, … in batch order). */
  const prepare = (payloads: ReadonlyArray<Outbox.NewPayload>) => {
    const tenants: Array<string> = []
    const ordinals: Array<number> = []
    const named = new Map<string, BoxCount>()
    for (const p of payloads) {
      const tenant = Mailbox.tenantOf(p)
      tenants.push(tenant)
      let box = named.get(p.mailbox)
      if (box === undefined) {
        box = { mailbox: p.mailbox, region: p.region, tenant, depth: 0, due: p.receivedAt }
        named.set(p.mailbox, box)
      }
      ordinals.push(++box.depth)
    }
    return { tenants, ordinals, named, boxes: Arr.sort(named.values(), mailboxOrder) }
  }
  type Prepared = ReturnType<typeof prepare>

  const payloadParams = (
    payloads: ReadonlyArray<Outbox.NewPayload>,
    from: number,
    to: number,
    prepared: Prepared,
    sequence: (i: number, box: BoxCount) => number,
    params: Array<unknown>
  ) => {
    for (let i = from; i < to; i++) {
      const p = payloads[i]!
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
        p.replyTarget == null ? null : encodeReplyTarget(p.replyTarget),
        p.traceContext ?? null,
        p.receivedAt,
        prepared.tenants[i],
        sequence(i, prepared.named.get(p.mailbox)!)
      )
    }
    return params
  }
  const mailboxParams = (boxes: ReadonlyArray<BoxCount>, params: Array<unknown>) => {
    for (const b of boxes) params.push(b.mailbox, b.region, b.depth, b.due, b.tenant)
    return params
  }
  const counterParams = (boxes: ReadonlyArray<BoxCount>, params: Array<unknown>) => {
    for (const b of boxes) params.push(b.mailbox, b.depth)
    return params
  }

  /** The write of one batch; `single` when it is one statement (no transaction needed). */
  return (payloads: ReadonlyArray<Outbox.NewPayload>): { readonly single: boolean; readonly write: Write } => {
    const prepared = prepare(payloads)
    const { boxes, ordinals } = prepared
    if (pg && payloads.length <= 400) {
      const params = payloadParams(payloads, 0, payloads.length, prepared, (i, box) => ordinals[i]! - box.depth, [])
      mailboxParams(boxes, params)
      counterParams(boxes, params)
      const text = combinedText(payloads.length, boxes.length)
      return { single: true, write: (run) => Effect.asVoid(run(text, params)) }
    }
    // at most 5 parameters per mailbox, 15 per payload: chunks of 400 stay under every limit
    const boxChunks = Arr.chunksOf(boxes, 400)
    const write: Write = (run) =>
      Effect.forEach(
        boxChunks,
        (chunk) => run(mailboxesText(0, chunk.length), mailboxParams(chunk, [])),
        { discard: true }
      ).pipe(
        Effect.zipRight(Effect.forEach(
          boxChunks,
          (chunk) => Effect.flatMap(run(countersText(0, chunk.length), counterParams(chunk, [])), decodeSequences)
        )),
        Effect.flatMap((counters) => {
          const last = new Map<string, number>()
          for (const rows of counters) for (const r of rows) last.set(r.mailbox, r.last)
          const sequence = (i: number, box: BoxCount) => last.get(box.mailbox)! - box.depth + ordinals[i]!
          const steps: Array<readonly [number, number]> = []
          for (let from = 0; from < payloads.length; from += 400) {
            steps.push([from, Math.min(payloads.length, from + 400)])
          }
          return Effect.forEach(
            steps,
            ([from, to]) => run(payloadsText(to - from, 0), payloadParams(payloads, from, to, prepared, sequence, [])),
            { discard: true }
          )
        })
      )
    return { single: false, write }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the drain's statements (SQLite; PostgreSQL's are in internal/pgDrainStatement.ts)
// ---------------------------------------------------------------------------------------------------------------

/** One write of a drain as statements on a batch's connection: `true` done, `false` the lease was not held. */
type SqliteSteps = (run: Run) => Effect.Effect<boolean, SqlError>

/**
 * SQLite (statements in the batch's `BEGIN IMMEDIATE` transaction): each lease-guarded write first locks the mailbox
 * row with the guard `lease_owner = $me AND lease_until >= now`, applying its depth change; if the payload write then
 * finds nothing (unknown id, another mailbox's payload), the depth change is undone and the write reports `false`
 * (`LeaseLost`), leaving nothing behind — so one caller's refusal never rolls back the others of its batch.
 */
const sqliteDrain = (() => {
  const hold = `UPDATE outbox_mailboxes SET depth = depth + ?
    WHERE mailbox = ? AND lease_owner = ? AND lease_until >= ? RETURNING mailbox`
  const unhold = `UPDATE outbox_mailboxes SET depth = depth - ? WHERE mailbox = ?`
  const deletePayload = `DELETE FROM outbox_payloads WHERE id = ? AND mailbox = ? RETURNING id`
  const retryPayload = `UPDATE outbox_payloads SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
    WHERE id = ? AND mailbox = ? RETURNING id`
  const columns = PgDrainStatement.payloadColumns
  const copyDead = `INSERT INTO outbox_dead_letters (${columns}, dead_at, reason, last_status, last_body)
    SELECT ${columns}, CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT)
    FROM outbox_payloads WHERE id = ? AND mailbox = ? RETURNING id`
  const deleteById = `DELETE FROM outbox_payloads WHERE id = ?`
  // guarded on the row's own depth, never on NOT EXISTS over payloads (docs/outbox.md, "The mailbox-row race")
  const releaseDelete = `DELETE FROM outbox_mailboxes WHERE mailbox = ? AND lease_owner = ? AND depth = 0`
  const releaseUpdate = `UPDATE outbox_mailboxes SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
    WHERE mailbox = ? AND lease_owner = ?`

  const guarded =
    (lease: PgDrainStatement.Guard, delta: number, write: (run: Run) => Effect.Effect<boolean, SqlError>) =>
    (run: Run) =>
      Effect.flatMap(run(hold, [delta, lease.mailbox, lease.owner, lease.now]), (held) => {
        if (held.length === 0) return Effect.succeed(false)
        return Effect.flatMap(
          write(run),
          (ok) => ok || delta === 0 ? Effect.succeed(ok) : Effect.as(run(unhold, [delta, lease.mailbox]), false)
        )
      })
  const found = Effect.map((rows: ReadonlyArray<unknown>) => rows.length > 0)

  return {
    complete: (lease: PgDrainStatement.Guard, id: number): SqliteSteps =>
      guarded(lease, -1, (run) => found(run(deletePayload, [id, lease.mailbox]))),
    retry: (lease: PgDrainStatement.Guard, id: number, nextAttemptAt: number, error: string): SqliteSteps =>
      guarded(lease, 0, (run) => found(run(retryPayload, [nextAttemptAt, safeText(error), id, lease.mailbox]))),
    deadLetter: (
      lease: PgDrainStatement.Guard,
      id: number,
      reason: string,
      lastStatus: number | null,
      lastBody: string | null
    ): SqliteSteps =>
      guarded(lease, -1, (run) =>
        Effect.flatMap(
          run(copyDead, [lease.now, safeText(reason), lastStatus, safeText(lastBody), id, lease.mailbox]),
          (rows) => rows.length === 0 ? Effect.succeed(false) : Effect.as(run(deleteById, [id]), true)
        )),
    release:
      (lease: { readonly mailbox: string; readonly owner: string }, nextAttemptAt: number): SqliteSteps => (run) =>
        run(releaseDelete, [lease.mailbox, lease.owner]).pipe(
          Effect.zipRight(run(releaseUpdate, [nextAttemptAt, lease.mailbox, lease.owner])),
          Effect.as(true)
        )
  }
})()

/** One drain write waiting for its group commit: SQLite's statements or PostgreSQL's piece (one per dialect). */
interface DrainWrite {
  readonly mailbox: string
  readonly owner: string
  readonly operation: string
  readonly steps: SqliteSteps | undefined
  readonly piece: PgDrainStatement.Piece | undefined
}

/**
 * The outbox statements, without transactions, for tests that must interleave them with other connections (the
 * mailbox-row race of docs/outbox.md). Run them inside `sql.withTransaction`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutboxStatements {
  /**
   * The whole write of one group commit: the mailbox upserts (sorted by name: one lock order), the sequence
   * counters, the payloads.
   */
  readonly writeBatch: (
    payloads: ReadonlyArray<Outbox.NewPayload>
  ) => Effect.Effect<void, SqlError | ParseResult.ParseError>
  /** `release`'s statements: delete the row guarded on its own depth, else give it back. */
  readonly releaseRows: (mailbox: string, owner: string, nextAttemptAt: number) => Effect.Effect<void, SqlError>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeStatements = (sql: SqlClient.SqlClient): OutboxStatements => {
  const plan = makeBatchWriter(sql)
  const run: Run = (text, params) => sql.unsafe(text, params)
  const statement = PgDrainStatement.make()
  return {
    writeBatch: (payloads) => plan(payloads).write(run),
    // exactly `release`'s statements (on PostgreSQL its one statement), run through the client
    releaseRows: (mailbox, owner, nextAttemptAt) =>
      isPg(sql)
        ? Effect.asVoid(run(...statement([PgDrainStatement.release({ mailbox, owner }, nextAttemptAt)])))
        : Effect.asVoid(sqliteDrain.release({ mailbox, owner }, nextAttemptAt)(run))
  }
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
      sql`INSERT INTO outbox_mailboxes (mailbox, region, depth, next_attempt_at, tenant)
      SELECT p.mailbox, MIN(p.region), COUNT(*), CAST(${now} AS BIGINT),
        (SELECT f.tenant FROM outbox_payloads f WHERE f.mailbox = p.mailbox ORDER BY f.id LIMIT 1)
      FROM outbox_payloads p
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

const closed = (operation: string) => new StoreUnavailable({ operation, cause: new Error("store closed") })

/**
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Outbox.Outbox["Type"], never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const health = yield* WriteHealth
    const transaction = makeTransaction(sql)
    const pg = isPg(sql)
    const begin = beginText(sql)
    const maxBatch = Math.max(1, options.maxBatch ?? 256)
    const wake = yield* Outbox.makeWakeSignal
    // SQLite's driver is synchronous: one turn of the event loop lets the requests whose I/O is ready join a batch
    const gather = pg ? Effect.void : nextTick

    /** A batch's statements on one reserved connection, without the client's statement and span machinery. */
    const onConnection = <A, E>(body: (run: Run) => Effect.Effect<A, E>): Effect.Effect<A, E | SqlError> =>
      Effect.scoped(
        Effect.flatMap(sql.reserve, (conn) => body((text, params) => conn.execute(text, params, undefined)))
      )
    /** Runs `body` in its own transaction on `run`'s connection (SQLite: `BEGIN IMMEDIATE`), rolled back on failure. */
    const transact = <A, E>(run: Run, body: Effect.Effect<A, E>): Effect.Effect<A, E | SqlError> =>
      Effect.flatMap(run(begin, []), () => Effect.flatMap(body, (a) => Effect.as(run("COMMIT", []), a))).pipe(
        Effect.onError(() => Effect.ignore(run("ROLLBACK", [])))
      )

    // -- enqueue: one batcher item per call; the commit's answer is every caller's ---------------------------
    const plan = makeBatchWriter(sql)
    const commit = (
      payloads: ReadonlyArray<Outbox.NewPayload>
    ): Effect.Effect<void, SqlError | ParseResult.ParseError> =>
      onConnection((run) => {
        const { single, write } = plan(payloads)
        return single ? write(run) : transact(run, write(run))
      })

    const enqueue = yield* GroupCommit.make<ReadonlyArray<Outbox.NewPayload>, void, StoreUnavailable>({
      maxBatch,
      gather,
      closed: () => closed("enqueue"),
      write: (batch) => {
        const payloads = batch.length === 1 ? batch[0]! : batch.flat()
        return Effect.flatMap(Effect.exit(storeErrors("enqueue")(commit(payloads))), (exit) => {
          health.record(exit, true)
          options.onCommit?.({ requests: batch.length, payloads: payloads.length, ok: Exit.isSuccess(exit) })
          const answers = Arr.map(batch, () => exit)
          // durable: this process's worker has work
          return Exit.isSuccess(exit) ? Effect.as(wake.notify, answers) : Effect.succeed(answers)
        })
      }
    })

    // -- the drain's writes: each keeps its own lease guard (evaluated inside the transaction) and its own answer
    // (`LeaseLost` for its own guard); every caller is answered only after the COMMIT, and all of them with
    // `StoreUnavailable` when it fails. Writes run in mailbox-name order: the lock order of the enqueue batches.
    const statement = PgDrainStatement.make()
    const runDrain = (
      batch: ReadonlyArray<DrainWrite>
    ): Effect.Effect<ReadonlyArray<boolean>, SqlError | ParseResult.ParseError> =>
      onConnection((run) => {
        const ordered = batch.length === 1 ? batch : Arr.sort(batch, mailboxOrder)
        const done = new Map<DrainWrite, boolean>()
        const answers = Effect.sync(() => Arr.map(batch, (w) => done.get(w) === true))
        if (!pg) {
          const steps = Effect.forEach(ordered, (w) => Effect.map(w.steps!(run), (ok) => done.set(w, ok)), {
            discard: true
          })
          return Effect.zipRight(transact(run, steps), answers)
        }
        // PostgreSQL: one statement per round (each mailbox at most once per round); several rounds share a
        // transaction
        const rounds = PgDrainStatement.rounds(ordered)
        const statements = Effect.forEach(rounds, (round) => {
          const pieces = Arr.map(round, (w) => w.piece!)
          return run(...statement(pieces)).pipe(
            Effect.flatMap((rows) => PgDrainStatement.answers(pieces, rows)),
            Effect.map((oks) => round.forEach((w, i) => done.set(w, oks[i]!)))
          )
        }, { discard: true })
        return Effect.zipRight(rounds.length === 1 ? statements : transact(run, statements), answers)
      })

    const drainWrite = yield* GroupCommit.make<DrainWrite, void, LeaseLost | StoreUnavailable>({
      maxBatch,
      gather,
      closed: (w) => closed(w.operation),
      write: (batch) =>
        Effect.map(Effect.exit(runDrain(batch)), (exit) => {
          options.onDrainCommit?.({ writes: batch.length, ok: Exit.isSuccess(exit) })
          if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
            health.failed(new StoreUnavailable({ operation: "drain writes", cause: Cause.squash(exit.cause) }))
          }
          return Arr.map(batch, (w, i): Exit.Exit<void, LeaseLost | StoreUnavailable> =>
            Exit.isSuccess(exit)
              ? exit.value[i] ? Exit.void : Exit.fail(new LeaseLost({ mailbox: w.mailbox, owner: w.owner }))
              : Exit.fail(new StoreUnavailable({ operation: w.operation, cause: Cause.squash(exit.cause) })))
        })
    })

    const submit = (
      lease: Outbox.Lease,
      operation: string,
      steps: () => SqliteSteps,
      piece: () => PgDrainStatement.Piece
    ) =>
      drainWrite({
        mailbox: lease.mailbox,
        owner: lease.owner,
        operation,
        steps: pg ? undefined : steps(),
        piece: pg ? piece() : undefined
      })

    const lost = (lease: Outbox.Lease) => new LeaseLost({ mailbox: lease.mailbox, owner: lease.owner })

    // expired event records are removed at most once a minute per process (a range delete on their index)
    let dedupeSweptAt = Number.NEGATIVE_INFINITY
    const sweepDedupe = (now: number) =>
      Effect.suspend(() => {
        if (now - dedupeSweptAt < 60_000) return Effect.void
        dedupeSweptAt = now
        return Effect.asVoid(sql`DELETE FROM dedupe WHERE expires_at <= ${now}`)
      })

    // -- claim (docs/outbox.md#claim): oldest due first, or with `fairShare` the tenant-fair order of
    // `Outbox.claimOrder` (docs/routing.md#fair-adaptive-delivery), ranked in the database
    const claimRows = ({ fairShare, held, leaseMs, limit, now, owner }: Outbox.ClaimOptions) => {
      const until = now + leaseMs
      if (fairShare === undefined || fairShare <= 0) {
        return sql.onDialectOrElse({
          pg: () =>
            sql`UPDATE outbox_mailboxes m SET lease_owner = ${owner}, lease_until = ${until}
              FROM (SELECT mailbox FROM outbox_mailboxes
                    WHERE next_attempt_at <= ${now} AND (lease_until IS NULL OR lease_until < ${now})
                    ORDER BY next_attempt_at, mailbox LIMIT ${limit}
                    FOR UPDATE SKIP LOCKED) c
              WHERE m.mailbox = c.mailbox
              RETURNING m.mailbox, m.tenant, m.next_attempt_at`,
          orElse: () =>
            sql`UPDATE outbox_mailboxes SET lease_owner = ${owner}, lease_until = ${until}
              WHERE mailbox IN (SELECT mailbox FROM outbox_mailboxes
                    WHERE next_attempt_at <= ${now} AND (lease_until IS NULL OR lease_until < ${now})
                    ORDER BY next_attempt_at, mailbox LIMIT ${limit})
              RETURNING mailbox, tenant, next_attempt_at`
        })
      }
      // a candidate's rank: what the owner holds of its tenant + its place among its tenant's candidates; those
      // ranked within the share first (tier 0), then the rest by rank (round robin), each tier oldest due first
      const heldJson = JSON.stringify(held === undefined ? {} : Object.fromEntries(held))
      // ranks are integers: `rank > share` is `rank > floor(share)` (a bigint parameter on PostgreSQL)
      const share = Math.floor(fairShare)
      return sql.onDialectOrElse({
        // PostgreSQL ranks without sorting every due mailbox: only a tenant's first `limit` candidates can be among
        // the first `limit` of the order (its later ones rank behind them), so the due tenants are walked on the
        // index (tenant, next_attempt_at, mailbox) one probe each, and each gives at most `limit` candidates, in
        // index order. A window function cannot share a query level with FOR UPDATE: rank and choose first
        // (without locks), then lock the chosen rows that are still due and unleased (READ COMMITTED re-checks
        // that on the newest row version), skipping those another claimer holds: a claim may get fewer than `limit`.
        pg: () =>
          sql`WITH RECURSIVE tenants (tenant) AS (
                (SELECT tenant FROM outbox_mailboxes WHERE next_attempt_at <= ${now} ORDER BY tenant LIMIT 1)
                UNION ALL
                SELECT n.tenant FROM tenants t CROSS JOIN LATERAL (
                  SELECT tenant FROM outbox_mailboxes WHERE tenant > t.tenant AND next_attempt_at <= ${now}
                  ORDER BY tenant LIMIT 1) n),
              ranked AS (
                SELECT c.mailbox, c.tenant, c.next_attempt_at, c.place FROM tenants t CROSS JOIN LATERAL (
                  SELECT mailbox, tenant, next_attempt_at,
                    ROW_NUMBER() OVER (ORDER BY next_attempt_at, mailbox) AS place
                  FROM outbox_mailboxes
                  WHERE tenant = t.tenant AND next_attempt_at <= ${now}
                    AND (lease_until IS NULL OR lease_until < ${now})
                  ORDER BY next_attempt_at, mailbox LIMIT ${limit}) c),
              chosen AS (
                SELECT r.mailbox, CASE WHEN r.place + COALESCE(h.n, 0) > ${share}
                  THEN r.place + COALESCE(h.n, 0) ELSE 0 END AS tier, r.next_attempt_at
                FROM ranked r
                LEFT JOIN (SELECT key AS tenant, value::bigint AS n FROM json_each_text(${heldJson}::json)) h
                  ON h.tenant = r.tenant
                ORDER BY tier, r.next_attempt_at, r.mailbox LIMIT ${limit}),
              locked AS (
                SELECT m.mailbox, c.tier FROM outbox_mailboxes m JOIN chosen c ON c.mailbox = m.mailbox
                WHERE m.next_attempt_at <= ${now} AND (m.lease_until IS NULL OR m.lease_until < ${now})
                FOR UPDATE OF m SKIP LOCKED)
            UPDATE outbox_mailboxes m SET lease_owner = ${owner}, lease_until = ${until}
            FROM locked l WHERE m.mailbox = l.mailbox
            RETURNING m.mailbox, m.tenant, m.next_attempt_at, l.tier`,
        orElse: () =>
          sql`UPDATE outbox_mailboxes SET lease_owner = ${owner}, lease_until = ${until}
            WHERE mailbox IN (
              SELECT r.mailbox FROM (
                SELECT mailbox, tenant, next_attempt_at,
                  ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY next_attempt_at, mailbox) AS place
                FROM outbox_mailboxes
                WHERE next_attempt_at <= ${now} AND (lease_until IS NULL OR lease_until < ${now})) r
              LEFT JOIN json_each(${heldJson}) h ON h.key = r.tenant
              ORDER BY CASE WHEN r.place + COALESCE(h.value, 0) > ${share}
                THEN r.place + COALESCE(h.value, 0) ELSE 0 END, r.next_attempt_at, r.mailbox
              LIMIT ${limit})
            RETURNING mailbox, tenant, next_attempt_at`
      })
    }
    /**
     * The claimed rows in claim order: by their tier (PostgreSQL returns it) and due time. SQLite's fair claim
     * returns no tier: the rows are recomputed with `Outbox.claimOrder`, which gives them the same order, because the
     * claimed rows are the first `limit` of that order (every claimed row's tenant-mates that rank before it are
     * claimed too, so each row keeps its place and rank among them; one connection, nothing skipped).
     */
    const inClaimOrder = (
      rows: ReadonlyArray<typeof ClaimRow.Type>,
      { fairShare, held }: Outbox.ClaimOptions
    ): ReadonlyArray<{ readonly mailbox: string; readonly tenant: string }> =>
      pg || fairShare === undefined || fairShare <= 0
        ? Arr.sort(rows, byTierThenDue)
        : Outbox.claimOrder(
          Arr.map(rows, (r) => ({ mailbox: r.mailbox, tenant: r.tenant, nextAttemptAt: r.next_attempt_at })),
          { limit: rows.length, fairShare, held }
        )

    return Outbox.Outbox.of({
      enqueue: (payloads) => payloads.length === 0 ? Effect.void : enqueue(payloads),
      awaitWork: wake.awaitWork,
      claim: (options) =>
        (options.limit <= 0 ? Effect.succeed<ReadonlyArray<unknown>>([]) : claimRows(options)).pipe(
          Effect.flatMap(decodeClaims),
          Effect.map((rows) => Arr.map(inClaimOrder(rows, options), (r) => ({ mailbox: r.mailbox, tenant: r.tenant }))),
          storeErrors("claim"),
          health.track
        ),
      renew: (lease, leaseMs) =>
        sql`UPDATE outbox_mailboxes SET lease_until = ${lease.now + leaseMs}
          WHERE mailbox = ${lease.mailbox} AND lease_owner = ${lease.owner} AND lease_until >= ${lease.now}
          RETURNING mailbox`.pipe(
          Effect.flatMap((rows) => rows.length === 0 ? Effect.fail(lost(lease)) : Effect.void),
          storeErrors("renew"),
          health.track
        ),
      head: (mailbox, limit) =>
        (limit <= 0 ?
          Effect.succeed<ReadonlyArray<unknown>>([]) :
          sql`SELECT ${sql.literal(PgDrainStatement.payloadColumns)} FROM outbox_payloads
          WHERE mailbox = ${mailbox} ORDER BY id LIMIT ${limit}`).pipe(
            Effect.flatMap(decodePayloads),
            Effect.map(Arr.map(toStored)),
            storeErrors("head")
          ),
      complete: (lease, id) =>
        submit(
          lease,
          "complete",
          () => sqliteDrain.complete(lease, id),
          () => PgDrainStatement.complete(lease, id)
        ),
      retry: (lease, id, { error, nextAttemptAt }) =>
        submit(
          lease,
          "retry",
          () => sqliteDrain.retry(lease, id, nextAttemptAt, error),
          () => PgDrainStatement.retry(lease, id, nextAttemptAt, error)
        ),
      deadLetter: (lease, id, { lastBody, lastStatus, reason }) =>
        submit(
          lease,
          "deadLetter",
          () => sqliteDrain.deadLetter(lease, id, reason, lastStatus, lastBody),
          () => PgDrainStatement.deadLetter(lease, id, reason, lastStatus, lastBody)
        ),
      release: (lease, nextAttemptAt) =>
        submit(
          lease,
          "release",
          () => sqliteDrain.release(lease, nextAttemptAt),
          () => PgDrainStatement.release(lease, nextAttemptAt)
        ).pipe(Effect.catchTag("LeaseLost", () => Effect.void)),
      replay: (ids, now) =>
        transaction(Effect.gen(function*() {
          const selected = ids === "all"
            ? yield* sql`SELECT id, mailbox, region, tenant FROM outbox_dead_letters ORDER BY id`
            : ids.length === 0
            ? []
            : Arr.flatten(
              yield* Effect.forEach(
                Arr.chunksOf(Array.from(new Set(ids)), 500),
                (chunk) => sql`SELECT id, mailbox, region, tenant FROM outbox_dead_letters WHERE ${sql.in("id", chunk)}`
              )
            )
          const rows = Arr.sort(yield* decodeReplays(selected), byId)
          for (const chunk of Arr.chunksOf(Arr.map(rows, (r) => r.id), 500)) {
            // new ids in the order of the old ones: the tail of each mailbox; the numbers are kept and the counters
            // not advanced (a replay is a payload below the region's high-water mark)
            yield* sql`INSERT INTO outbox_payloads (${sql.literal(copyColumns)}, attempts, next_attempt_at)
              SELECT ${sql.literal(copyColumns)}, 0, CAST(${now} AS BIGINT) FROM outbox_dead_letters
              WHERE ${sql.in("id", chunk)} ORDER BY id`
            yield* sql`DELETE FROM outbox_dead_letters WHERE ${sql.in("id", chunk)}`
          }
          const boxes = countBoxes(rows, () => now)
          yield* Effect.forEach(
            Arr.chunksOf(boxes, 500),
            (chunk) =>
              sql`INSERT INTO outbox_mailboxes ${
                sql.insert(chunk.map((r) => ({
                  mailbox: r.mailbox,
                  region: r.region,
                  depth: r.depth,
                  next_attempt_at: r.due,
                  tenant: r.tenant
                })))
              } ON CONFLICT (mailbox) DO UPDATE SET depth = outbox_mailboxes.depth + excluded.depth`,
            { discard: true }
          )
          return rows.length
        })).pipe(storeErrors("replay"), health.trackAppend),
      claimReply: (deliveryId, now) =>
        sql`INSERT INTO replies (delivery_id, claimed_at) VALUES (${deliveryId}, ${now})
          ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id`.pipe(
          Effect.map((rows) => rows.length > 0),
          storeErrors("claimReply"),
          health.track
        ),
      // first writer wins: the upsert overwrites only an expired record, atomically (one statement)
      remember: (key, { now, until }) =>
        sweepDedupe(now).pipe(
          Effect.zipRight(
            sql`INSERT INTO dedupe (key, expires_at) VALUES (${key}, ${until})
              ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dedupe.expires_at <= ${now}
              RETURNING key`
          ),
          Effect.map((rows) => rows.length > 0),
          storeErrors("remember"),
          health.track
        ),
      forget: (key) =>
        sql`DELETE FROM dedupe WHERE key = ${key}`.pipe(Effect.asVoid, storeErrors("forget"), health.track),
      deadLetters: sql`SELECT ${
        sql.literal(PgDrainStatement.payloadColumns)
      }, dead_at, reason, last_status, last_body FROM outbox_dead_letters ORDER BY id`.pipe(
        Effect.flatMap(decodeDeadLetters),
        Effect.map(Arr.map(toDeadLetter)),
        storeErrors("deadLetters")
      ),
      mailboxes: sql`SELECT m.mailbox, m.region, m.tenant, m.depth, m.next_attempt_at, m.lease_owner, m.lease_until,
          (SELECT MIN(p.received_at) FROM outbox_payloads p WHERE p.mailbox = m.mailbox) AS oldest
        FROM outbox_mailboxes m`.pipe(
        Effect.flatMap(decodeMailboxes),
        Effect.map((rows) => Arr.sort(Arr.map(rows, toMailboxInfo), mailboxOrder)),
        storeErrors("mailboxes")
      )
    })
  })

/**
 * The outbox over the `SqlClient` in context (migrations must have run). Closing the layer fails what is still
 * waiting for a group commit with `StoreUnavailable`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Outbox.Outbox, never, SqlClient.SqlClient> =>
  Layer.scoped(Outbox.Outbox, make(options))
