// The one group-commit batcher of the SQL outbox (enqueue and the drain's writes) on its own: concurrent callers
// share batches, each gets its own answer, a defect answers its batch and the batcher goes on, a closed scope fails
// what is submitted.
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as GroupCommit from "../../packages/adapters/src/internal/groupCommit.js"

describe("GroupCommit", () => {
  it.scoped("concurrent callers share batches (at most maxBatch), each with its own answer", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<number>> = []
      const submit = yield* GroupCommit.make<number, number, string>({
        maxBatch: 8,
        gather: Effect.yieldNow(),
        closed: () => "closed",
        write: (batch) =>
          Effect.sync(() => {
            batches.push(batch)
            return batch.map((n) => (n % 3 === 0 ? Exit.fail(`refused ${n}`) : Exit.succeed(n * 2)))
          })
      })
      const answers = yield* Effect.all(
        Array.from({ length: 50 }, (_, n) => Effect.either(submit(n))),
        { concurrency: "unbounded" }
      )
      answers.forEach((answer, n) => {
        if (n % 3 === 0) assert.deepStrictEqual(answer._tag === "Left" && answer.left, `refused ${n}`)
        else assert.deepStrictEqual(answer._tag === "Right" && answer.right, n * 2)
      })
      assert.deepStrictEqual(batches.flat().sort((a, b) => a - b), Array.from({ length: 50 }, (_, n) => n))
      assert.isTrue(batches.every((b) => b.length <= 8))
      assert.isBelow(batches.length, 50)
    }))

  it.scoped("a defect in a write answers its batch with the defect; the next batch is written", () =>
    Effect.gen(function*() {
      let calls = 0
      const submit = yield* GroupCommit.make<number, number, never>({
        maxBatch: 4,
        gather: Effect.void,
        closed: () => undefined as never,
        write: (batch) =>
          Effect.suspend(() =>
            ++calls === 1 ? Effect.die(new Error("driver bug")) : Effect.succeed(batch.map((n) => Exit.succeed(n)))
          )
      })
      const first = yield* Effect.exit(submit(1))
      assert.isTrue(Exit.isFailure(first) && Cause.isDie(first.cause))
      assert.strictEqual(yield* submit(2), 2)
    }))

  it.effect("closing the scope fails pending and later submissions with `closed`", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      const submit = yield* GroupCommit.make<string, void, string>({
        maxBatch: 1,
        gather: Deferred.await(gate),
        closed: (item) => `closed: ${item}`,
        write: (batch) => Effect.succeed(batch.map(() => Exit.void))
      }).pipe(Scope.extend(scope))
      const waiting = yield* Effect.fork(submit("a"))
      yield* Effect.yieldNow()
      const queued = yield* Effect.fork(submit("b"))
      yield* Effect.yieldNow()
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* Effect.flip(submit("c")), "closed: c")
      // "a" and "b" waited for a batch that had not started: failed by the close
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Effect.flip(Fiber.join(waiting)), "closed: a")
      assert.deepStrictEqual(yield* Effect.flip(Fiber.join(queued)), "closed: b")
    }))
})
