// The PostgreSQL drain statement builder on its own: pieces joined into one statement (placeholders renumbered, CTE
// names made distinct), rounds with every mailbox at most once, the answers read back, and the text cache per
// builder. The statements run against PostgreSQL in the conformance and SQL suites (Postgres.test.ts).
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import * as PgDrainStatement from "../../packages/adapters/src/internal/pgDrainStatement.js"

const lease = (mailbox: string) => ({ mailbox, owner: "w1", now: 100 })

const piece = fc.oneof(
  fc.constant((m: string, i: number) => PgDrainStatement.complete(lease(m), i)),
  fc.constant((m: string, i: number) => PgDrainStatement.retry(lease(m), i, 200, "boom")),
  fc.constant((m: string, i: number) => PgDrainStatement.deadLetter(lease(m), i, "max_attempts", 500, "no")),
  fc.constant((m: string, _: number) => PgDrainStatement.release(lease(m), 300))
)

const placeholders = (text: string) => Array.from(text.matchAll(/\$(\d+)/g), (m) => Number(m[1]))
const cteNames = (text: string) => Array.from(text.matchAll(/\b(lk|done|dep|copied|rd|ru)(_\d+)?\b/g), (m) => m[0])

describe("PgDrainStatement", () => {
  it("one piece: its own placeholders, its CTEs suffixed _0, one COUNT per ref", () => {
    const [text, params] = PgDrainStatement.make()([PgDrainStatement.complete(lease("m:us:1"), 7)])
    assert.deepStrictEqual(params, ["m:us:1", "w1", 100, 7])
    assert.deepStrictEqual(new Set(placeholders(text)), new Set([1, 2, 3, 4]))
    assert.isTrue(text.startsWith("WITH lk_0 AS MATERIALIZED"))
    assert.isTrue(
      text.endsWith("SELECT (SELECT COUNT(*) FROM done_0) AS done_0, (SELECT COUNT(*) FROM dep_0) AS dep_0")
    )
  })

  it("the second piece's placeholders start after the first's parameters", () => {
    const [text, params] = PgDrainStatement.make()([
      PgDrainStatement.retry(lease("a"), 1, 200, "x"),
      PgDrainStatement.release(lease("b"), 300)
    ])
    assert.deepStrictEqual(params, ["a", "w1", 100, 1, 200, "x", "b", "w1", 300])
    assert.include(text, "rd_1 AS (DELETE FROM outbox_mailboxes WHERE mailbox = $7 AND lease_owner = $8 AND depth = 0")
    assert.include(text, "next_attempt_at = $9")
  })

  it.prop(
    "any pieces: every placeholder names a parameter, every parameter is used, every CTE name is its piece's",
    [fc.array(piece, { minLength: 1, maxLength: 24 })],
    ([makers]) => {
      const pieces = makers.map((make, i) => make(`m:us:${i}`, i + 1))
      const [text, params] = PgDrainStatement.make()(pieces)
      assert.strictEqual(params.length, pieces.reduce((n, p) => n + p.params.length, 0))
      assert.deepStrictEqual(new Set(placeholders(text)), new Set(params.map((_, i) => i + 1)))
      for (const name of cteNames(text)) assert.match(name, /_\d+$/, `unrenamed CTE ${name}`)
      pieces.forEach((p, i) => {
        for (const r of p.refs) assert.include(text, `AS ${r}_${i}`)
      })
      // the same shape again (from the cache up to 16 pieces, built anew past it): the same text
      assert.strictEqual(PgDrainStatement.make()(pieces)[0], text)
    }
  )

  it("the text cache belongs to its builder: bounded by shapes, none past 16 pieces", () => {
    const a = PgDrainStatement.make({ capacity: 2 })
    const b = PgDrainStatement.make({ capacity: 2 })
    a([PgDrainStatement.complete(lease("x"), 1)])
    a([PgDrainStatement.complete(lease("y"), 2)]) // same shape "c"
    a([PgDrainStatement.release(lease("x"), 1)])
    a([PgDrainStatement.retry(lease("x"), 1, 2, "e")]) // a third shape: over capacity, not kept
    a(Array.from({ length: 17 }, (_, i) => PgDrainStatement.complete(lease(`m${i}`), i)))
    assert.strictEqual(a.cachedShapes(), 2)
    assert.strictEqual(b.cachedShapes(), 0)
  })

  it.prop(
    "rounds: each mailbox at most once per round, a mailbox's writes in arrival order, as few rounds as possible",
    [fc.array(fc.record({ mailbox: fc.constantFrom("a", "b", "c", "d"), n: fc.nat() }), { maxLength: 40 })],
    ([writes]) => {
      const rounds = PgDrainStatement.rounds(writes)
      for (const round of rounds) {
        assert.strictEqual(new Set(round.map((w) => w.mailbox)).size, round.length)
        assert.isAbove(round.length, 0)
      }
      for (const mailbox of ["a", "b", "c", "d"]) {
        const arrived = writes.filter((w) => w.mailbox === mailbox)
        assert.deepStrictEqual(rounds.flatMap((r) => r.filter((w) => w.mailbox === mailbox)), arrived)
      }
      const most = Math.max(0, ...["a", "b", "c", "d"].map((m) => writes.filter((w) => w.mailbox === m).length))
      assert.strictEqual(rounds.length, most)
    }
  )

  it.effect("answers: a write is done when its `done` CTE returned a row; release always is", () =>
    Effect.gen(function*() {
      const pieces = [
        PgDrainStatement.complete(lease("a"), 1),
        PgDrainStatement.retry(lease("b"), 2, 3, "e"),
        PgDrainStatement.release(lease("c"), 4)
      ]
      // PostgreSQL returns COUNT(*) as a string (BIGINT)
      const row = { done_0: "1", dep_0: "1", done_1: "0", rd_2: "0", ru_2: "0" }
      assert.deepStrictEqual(yield* PgDrainStatement.answers(pieces, [row]), [true, false, true])
      assert.deepStrictEqual(yield* PgDrainStatement.answers(pieces, [{ ...row, done_1: 1 }]), [true, true, true])
      // a row that does not decode is a failure, never a silent "done"
      const bad = yield* Effect.flip(PgDrainStatement.answers(pieces, [{ ...row, done_0: "lots" }]))
      assert.strictEqual(bad._tag, "ParseError")
    }))
})
