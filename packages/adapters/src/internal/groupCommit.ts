/**
 * Group commit, leader style — the one batcher of the SQL outbox, used by `enqueue` and by the drain's writes.
 *
 * A caller that finds no batch being written writes everything pending (its own item and whatever arrived meanwhile)
 * on its own fiber; callers that arrive while a batch is written queue up and wait. When a batch ends with more
 * pending, a fiber in the layer's scope writes the next one. At concurrency 1 there is no hand-off at all; under load
 * every transaction carries a whole batch. Each item gets its own answer (`write` answers them one by one), and every
 * caller is answered only once its batch is written. Closing the scope fails what is still pending with `closed`.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Effect, Exit } from "effect"

export interface Options<I, A, E> {
  /** At most this many items per batch. */
  readonly maxBatch: number
  /** Runs before each batch is taken, e.g. one turn of the event loop so that requests whose I/O is ready join. */
  readonly gather: Effect.Effect<void>
  /** Writes one batch and answers each of its items (same order). A defect answers every item with it. */
  readonly write: (batch: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<A, E>>>
  /** The answer to an item submitted, or still pending, once the scope is closed. */
  readonly closed: (item: I) => E
}

// an item's answer: kept in `exit` for the leader (which reads it once its batch is written), handed to `resume`
// for a caller waiting in `Effect.async` — no `Deferred` per item
interface Pending<I, A, E> {
  readonly item: I
  exit: Exit.Exit<A, E> | undefined
  resume: ((exit: Exit.Exit<A, E>) => void) | undefined
}

const answer = <I, A, E>(p: Pending<I, A, E>, exit: Exit.Exit<A, E>): void => {
  if (p.exit !== undefined) return
  p.exit = exit
  const resume = p.resume
  if (resume !== undefined) {
    p.resume = undefined
    resume(exit)
  }
}

/** The item's answer once it has one. */
const awaitAnswer = <I, A, E>(p: Pending<I, A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() =>
    p.exit !== undefined ? p.exit : Effect.async<A, E>((resume) => {
      if (p.exit !== undefined) resume(p.exit)
      else p.resume = resume
    })
  )

/** Submits one item: succeeds or fails with the item's own answer, once its batch is written. */
export type Submit<I, A, E> = (item: I) => Effect.Effect<A, E>

export const make = <I, A, E>(options: Options<I, A, E>): Effect.Effect<Submit<I, A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const maxBatch = Math.max(1, options.maxBatch)
    const pending: Array<Pending<I, A, E>> = []
    let writing = false
    let closed = false

    const write = (items: ReadonlyArray<I>) =>
      Effect.catchAllCause(
        options.write(items),
        (cause) => Effect.succeed(items.map((): Exit.Exit<A, E> => Exit.failCause(cause)))
      )

    // uninterruptible: once a batch is taken, its callers are answered whatever happens to the leader's fiber
    const lead: Effect.Effect<void> = Effect.zipRight(
      options.gather,
      Effect.suspend(() => {
        const batch = pending.splice(0, maxBatch)
        return Effect.flatMap(
          write(batch.length === 1 ? [batch[0]!.item] : batch.map((p) => p.item)),
          (answers) => {
            batch.forEach((p, i) => answer(p, answers[i]!))
            if (pending.length === 0 || closed) {
              writing = false
              return Effect.void
            }
            return Effect.asVoid(Effect.forkIn(Effect.uninterruptible(lead), scope))
          }
        )
      })
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const p of pending.splice(0)) answer(p, Exit.fail(options.closed(p.item)))
      })
    )

    return (item: I): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(options.closed(item))
        const p: Pending<I, A, E> = { item, exit: undefined, resume: undefined }
        pending.push(p)
        if (writing) return awaitAnswer(p)
        writing = true
        return Effect.zipRight(Effect.uninterruptible(lead), awaitAnswer(p))
      })
  })
