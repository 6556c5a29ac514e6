/**
 * The drain's writes on PostgreSQL as ONE statement per batch round (one round trip, atomic on its own, no
 * BEGIN/COMMIT).
 *
 * Each write (`complete`, `retry`, `deadLetter`, `release`) is a `Piece`: CTEs with placeholders `$1…` local to the
 * piece and CTE names among `lk`, `done`, `dep`, `copied`, `rd`, `ru`; `statement` renumbers and renames the pieces
 * of one round and selects `COUNT(*)` of each CTE of every piece's `refs`, in order (also the order they run in).
 * Per write, `lk` locks the mailbox row `FOR UPDATE` with the lease guard (READ COMMITTED re-checks it on the newest
 * row version after a lock wait), the payload write runs only when `lk` returned the row, and the depth changes only
 * when the payload write did (`dep`, on the row `lk` locked: the newest version). A write is done when its `done`
 * CTE returned a row (or always, when it has none: `release`). The pieces of one statement are on distinct
 * mailboxes (`rounds`).
 *
 * @internal
 */
import type { ParseResult } from "effect"
import { Effect, Schema } from "effect"
import { Int, safeText } from "./sql.js"

/** One drain write as a piece of a statement. */
export interface Piece {
  /** The shape of the piece (one letter per kind): the key of the statement text cache. */
  readonly key: string
  readonly ctes: string
  readonly refs: ReadonlyArray<string>
  readonly params: ReadonlyArray<unknown>
}

/** The lease a write is guarded by. */
export interface Guard {
  readonly mailbox: string
  readonly owner: string
  readonly now: number
}

/**
 * The columns of a payload row, copied as they are into the dead letters: a dead letter keeps its `sequence` (the
 * region sees the gap) and its `tenant` (a replay re-creates the mailbox row with it).
 */
export const payloadColumns =
  "id, mailbox, provider, region, integration_id, method, path, headers, body, received_at, delivery_id, attempts, next_attempt_at, last_error, reply_target, trace_context, sequence, tenant"

// $1 mailbox, $2 owner, $3 now, $4 id, then the write's own values
const lk = `lk AS MATERIALIZED (SELECT mailbox FROM outbox_mailboxes
      WHERE mailbox = $1 AND lease_owner = $2 AND lease_until >= $3 FOR UPDATE)`
const dep = `dep AS (UPDATE outbox_mailboxes SET depth = depth - 1
      WHERE mailbox = $1 AND EXISTS (SELECT 1 FROM done) RETURNING mailbox)`
const completeCtes = `${lk},
    done AS (DELETE FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id),
    ${dep}`
const retryCtes = `${lk},
    done AS (UPDATE outbox_payloads SET attempts = attempts + 1, next_attempt_at = $5, last_error = $6
      WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id)`
const deadLetterCtes = `${lk},
    copied AS (INSERT INTO outbox_dead_letters (${payloadColumns}, dead_at, reason, last_status, last_body)
      SELECT ${payloadColumns}, CAST($5 AS BIGINT), CAST($6 AS TEXT), CAST($7 AS INTEGER), CAST($8 AS TEXT)
      FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM lk) RETURNING id),
    done AS (DELETE FROM outbox_payloads WHERE id = $4 AND mailbox = $1 AND EXISTS (SELECT 1 FROM copied)
      RETURNING id),
    ${dep}`
// the row is deleted when its own depth is 0 (a concurrent enqueue's upsert makes the delete wait and then keep it),
// else given back; `ru` skips a row `rd` deleted. Guarded on the row's own depth, never on NOT EXISTS over payloads
// (docs/outbox.md, "The mailbox-row race").
const releaseCtes = `rd AS (DELETE FROM outbox_mailboxes WHERE mailbox = $1 AND lease_owner = $2 AND depth = 0
      RETURNING mailbox),
    ru AS (UPDATE outbox_mailboxes SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL
      WHERE mailbox = $1 AND lease_owner = $2 AND NOT EXISTS (SELECT 1 FROM rd) RETURNING mailbox)`

/** Delivered: the payload leaves the outbox, the mailbox's depth goes down by one. */
export const complete = (lease: Guard, id: number): Piece => ({
  key: "c",
  ctes: completeCtes,
  refs: ["done", "dep"],
  params: [lease.mailbox, lease.owner, lease.now, id]
})

/** Failed, retryable: attempts + 1, the payload's next attempt time and its error. */
export const retry = (lease: Guard, id: number, nextAttemptAt: number, error: string): Piece => ({
  key: "r",
  ctes: retryCtes,
  refs: ["done"],
  params: [lease.mailbox, lease.owner, lease.now, id, nextAttemptAt, safeText(error)]
})

/** Failed for good: the payload is copied into the dead letters (dead at the lease's `now`) and removed. */
export const deadLetter = (
  lease: Guard,
  id: number,
  reason: string,
  lastStatus: number | null,
  lastBody: string | null
): Piece => ({
  key: "d",
  ctes: deadLetterCtes,
  refs: ["done", "dep"],
  params: [lease.mailbox, lease.owner, lease.now, id, lease.now, safeText(reason), lastStatus, safeText(lastBody)]
})

/** Gives the mailbox back (or removes its row when its depth is 0). Always done: a lost lease changes nothing. */
export const release = (lease: { readonly mailbox: string; readonly owner: string }, nextAttemptAt: number): Piece => ({
  key: "l",
  ctes: releaseCtes,
  refs: ["rd", "ru"],
  params: [lease.mailbox, lease.owner, nextAttemptAt]
})

/**
 * Splits a batch (already in lock order) into rounds with every mailbox at most once: a second write of one mailbox
 * goes to the next round, in arrival order.
 */
export const rounds = <A extends { readonly mailbox: string }>(
  writes: ReadonlyArray<A>
): ReadonlyArray<ReadonlyArray<A>> => {
  const out: Array<Array<A>> = []
  const seen = new Map<string, number>()
  for (const w of writes) {
    const round = seen.get(w.mailbox) ?? 0
    seen.set(w.mailbox, round + 1)
    const list = out[round] ?? (out[round] = [])
    list.push(w)
  }
  return out
}

/** Builds one statement from the pieces of a round. */
export interface Statement {
  (pieces: ReadonlyArray<Piece>): readonly [string, ReadonlyArray<unknown>]
  /** How many statement shapes the cache holds (tests). */
  readonly cachedShapes: () => number
}

/**
 * A statement builder with its own text cache (one per store: made when the store's layer is built). Texts of small
 * shapes (up to `maxPieces` pieces, `capacity` shapes) are reused: the hot path skips the joining.
 */
export const make = (options: { readonly maxPieces?: number; readonly capacity?: number } = {}): Statement => {
  const maxPieces = options.maxPieces ?? 16
  const capacity = options.capacity ?? 256
  const texts = new Map<string, string>()
  const build = (pieces: ReadonlyArray<Piece>): readonly [string, ReadonlyArray<unknown>] => {
    const params: Array<unknown> = []
    for (const p of pieces) params.push(...p.params)
    const key = pieces.map((p) => p.key).join("")
    let text = texts.get(key)
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
      if (pieces.length <= maxPieces && texts.size < capacity) texts.set(key, text)
    }
    return [text, params]
  }
  return Object.assign(build, { cachedShapes: () => texts.size })
}

const CountRow = Schema.Record({ key: Schema.String, value: Int })
const decodeCounts = Schema.decodeUnknown(Schema.Array(CountRow))

/** Which pieces of a round were done, from the statement's one row of counts. */
export const answers = (
  pieces: ReadonlyArray<Piece>,
  rows: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<boolean>, ParseResult.ParseError> =>
  Effect.map(
    decodeCounts(rows),
    (decoded) => {
      const row = decoded[0] ?? {}
      return pieces.map((p, i) => (p.refs.includes("done") ? (row[`done_${i}`] ?? 0) > 0 : true))
    }
  )
