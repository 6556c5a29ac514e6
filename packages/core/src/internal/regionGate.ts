/**
 * The runtime side of the adaptive per-region limit (docs/routing.md#fair-adaptive-delivery): one gate per worker,
 * shared by its drains. Before each send a drain takes a slot of the payload's region (waiting while the region has
 * `limit` requests in flight); the answer feeds the limit (`DeliveryPolicy.limitAfter`), and a 429 or 503 with
 * `Retry-After` pauses the whole region until then: a drain that finds its region paused does not wait, it is told
 * when the pause ends (and stops, releasing its mailbox due then).
 *
 * Why not `Effect.makeSemaphore`: it can `resize` in effect 3.22, but a waiting drain has to wake up now and then to
 * renew its lease, and a `take` raced against a timer can complete just as the timer wins (a permit taken that nobody
 * releases); a pause also has to wake every waiter with another answer than "go". So: a counter per region and one
 * `Deferred` per waiter, the slot handed over synchronously by whoever frees it. Who holds a slot is the waiter's
 * ticket's state, never the outcome of a race, and the finalizer of `send` settles it (a waiter interrupted or failed
 * leaves the queue; a slot held when the send did not finish is given back without feeding the limit). No polling:
 * a waiter sleeps on its `Deferred` and wakes up only to renew its lease.
 *
 * @internal
 */
import { Clock, Context, Deferred, Effect, Exit, FiberId } from "effect"
import * as DeliveryPolicy from "../DeliveryPolicy.js"
import type { Settings } from "../DeliverySettings.js"
import * as Metrics from "../Metrics.js"

/** What a drain learns when it asks for a slot: its send went out, or the region is paused until `until`. */
export type Pass<A> =
  | { readonly _tag: "Sent"; readonly value: A }
  | { readonly _tag: "Paused"; readonly until: number }

/** What one answer says: its load signal, and a pause the region asked for (`Retry-After` of a 429 or 503), in ms. */
export interface Feedback {
  readonly signal: DeliveryPolicy.LoadSignal
  readonly pauseMs?: number | undefined
}

/** How a drain waits for a slot: `tick` (its lease renewal) runs every `everyMs` while it waits; its failure ends the wait. */
export interface Waiting<E, R> {
  readonly everyMs: number
  readonly tick: Effect.Effect<void, E, R>
}

export interface Gate {
  /**
   * Sends through a slot of `region`: waits for one (running `waiting.tick` every `waiting.everyMs`), runs `send`,
   * feeds `feedback(value)` to the region's limit and frees the slot. When the region is paused (also while waiting),
   * `send` is not run: `Paused` with the end of the pause.
   */
  readonly send: <A, E, R, E2, R2>(
    region: string,
    waiting: Waiting<E2, R2>,
    send: Effect.Effect<A, E, R>,
    feedback: (value: A) => Feedback
  ) => Effect.Effect<Pass<A>, E | E2, R | R2>
  /** The region's current limit (`undefined`: the gate has not seen it, or there is no gate). */
  readonly limitOf: (region: string) => number | undefined
}

/** No gate: every send goes at once and nothing is paused (`delivery.adaptive: false`, or a drain run alone). */
export const none: Gate = {
  send: (_region, _waiting, send) => Effect.map(send, (value) => ({ _tag: "Sent", value }) as const),
  limitOf: () => undefined
}

/** The gate the drains of a worker share (`none` unless the worker provides its own). */
export class CurrentGate extends Context.Reference<CurrentGate>()("@cellgate/core/RegionGate", {
  defaultValue: (): Gate => none
}) {}

type Answer = "go" | { readonly until: number }

interface Ticket {
  state: "new" | "waiting" | "held" | "done"
  readonly deferred: Deferred.Deferred<Answer>
}

interface RegionState {
  limit: DeliveryPolicy.RegionLimit
  inFlight: number
  pausedUntil: number
  readonly waiters: Array<Ticket>
}

/** A gate for one worker, its limits starting at `DeliveryPolicy.limitStart(settings)`. */
export const make = (
  settings: Pick<Settings, "regionConcurrency" | "concurrency" | "adaptive" | "retryAfterMaxMs">
): Gate => {
  const regions = new Map<string, RegionState>()

  const stateOf = (region: string): Effect.Effect<RegionState> =>
    Effect.suspend(() => {
      const known = regions.get(region)
      if (known !== undefined) return Effect.succeed(known)
      const state: RegionState = {
        limit: DeliveryPolicy.limitStart(settings),
        inFlight: 0,
        pausedUntil: Number.NEGATIVE_INFINITY,
        waiters: []
      }
      regions.set(region, state)
      return Effect.as(Metrics.regionConcurrency.update(state.limit.limit, region), state)
    })

  // hands the free slots to the waiters, first come first served (synchronous: nobody can take a slot in between)
  const handOver = (state: RegionState) => {
    while (state.inFlight < state.limit.limit && state.waiters.length > 0) {
      const next = state.waiters.shift()!
      next.state = "held"
      state.inFlight++
      Deferred.unsafeDone(next.deferred, Exit.succeed<Answer>("go"))
    }
  }

  // a slot held when the send did not finish (interrupted, a defect): given back, the limit not fed
  const settle = (state: RegionState, ticket: Ticket) =>
    Effect.sync(() => {
      if (ticket.state === "waiting") {
        const i = state.waiters.indexOf(ticket)
        if (i !== -1) state.waiters.splice(i, 1)
      } else if (ticket.state === "held") {
        state.inFlight--
        handOver(state)
      }
      ticket.state = "done"
    })

  // the answer of a send: feeds the limit, frees the slot, maybe pauses the region; uninterruptible, so the slot is
  // never freed without the waiters being served
  const done = (region: string, state: RegionState, ticket: Ticket, feedback: Feedback) =>
    Effect.uninterruptible(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      ticket.state = "done"
      state.inFlight--
      const before = state.limit.limit
      state.limit = DeliveryPolicy.limitAfter(state.limit, feedback.signal, now, settings)
      if (state.limit.limit !== before) yield* Metrics.regionConcurrency.update(state.limit.limit, region)
      const pauseMs = feedback.pauseMs === undefined ? 0 : Math.min(feedback.pauseMs, settings.retryAfterMaxMs)
      if (feedback.signal === "overload" && pauseMs > 0 && now + pauseMs > state.pausedUntil) {
        if (state.pausedUntil <= now) yield* Metrics.regionPausedTotal.update(1, region)
        state.pausedUntil = now + pauseMs
        // nobody waits through a pause: every waiter is told when it ends (and gives its mailbox back until then)
        for (const w of state.waiters.splice(0)) {
          w.state = "done"
          Deferred.unsafeDone(w.deferred, Exit.succeed<Answer>({ until: state.pausedUntil }))
        }
      }
      if (state.pausedUntil <= now) handOver(state)
    }))

  const send = <A, E, R, E2, R2>(
    region: string,
    waiting: Waiting<E2, R2>,
    effect: Effect.Effect<A, E, R>,
    feedback: (value: A) => Feedback
  ): Effect.Effect<Pass<A>, E | E2, R | R2> =>
    Effect.flatMap(stateOf(region), (state) => {
      const ticket: Ticket = { state: "new", deferred: Deferred.unsafeMake<Answer>(FiberId.none) }
      // asleep on the ticket; awake every `everyMs` to renew the lease, the ticket staying in the queue
      const wait: Effect.Effect<Answer, E2, R2> = Effect.flatMap(
        Effect.timeoutOption(Deferred.await(ticket.deferred), waiting.everyMs),
        (answer) => answer._tag === "Some" ? Effect.succeed(answer.value) : Effect.zipRight(waiting.tick, wait)
      )
      const take = Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<Answer, E2, R2> => {
        if (state.pausedUntil > now) return Effect.succeed({ until: state.pausedUntil })
        if (state.inFlight < state.limit.limit && state.waiters.length === 0) {
          ticket.state = "held"
          state.inFlight++
          return Effect.succeed("go")
        }
        ticket.state = "waiting"
        state.waiters.push(ticket)
        return wait
      })
      return take.pipe(
        Effect.flatMap((answer): Effect.Effect<Pass<A>, E, R> =>
          answer === "go"
            ? Effect.map(
              Effect.tap(effect, (value) => done(region, state, ticket, feedback(value))),
              (value) => ({ _tag: "Sent", value })
            )
            : Effect.succeed({ _tag: "Paused", until: answer.until })
        ),
        Effect.ensuring(settle(state, ticket))
      )
    })

  return {
    send,
    limitOf: (region) => regions.get(region)?.limit.limit
  }
}
