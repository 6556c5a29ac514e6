// The claim order every store implements (docs/routing.md#fair-adaptive-delivery), as properties of the pure
// `Outbox.claimOrder`: the stores are held to it by the conformance and equivalence suites (test/adapters).
import { Mailbox, Outbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

const candidate = FastCheck.record({
  mailbox: FastCheck.stringMatching(/^[a-e]{1,3}$/),
  tenant: FastCheck.constantFrom("i:1", "i:2", "i:3", "o:4"),
  nextAttemptAt: FastCheck.integer({ min: 0, max: 20 })
})
// mailbox names are unique, as in a store
const candidates = FastCheck.uniqueArray(candidate, { selector: (c) => c.mailbox, maxLength: 40 })
const held = FastCheck.dictionary(FastCheck.constantFrom("i:1", "i:2", "i:3", "o:4"), FastCheck.nat(4))
  .map((d) => new Map(Object.entries(d)))
const share = FastCheck.integer({ min: 1, max: 4 })
const limit = FastCheck.integer({ min: 0, max: 45 })

const dueOrder = (cs: ReadonlyArray<Outbox.Candidate>) =>
  [...cs].sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.mailbox < b.mailbox ? -1 : 1))

/** Each chosen candidate's rank: what the owner held of its tenant plus its place among the chosen of its tenant. */
const ranks = (chosen: ReadonlyArray<Outbox.Candidate>, h: ReadonlyMap<string, number>) => {
  const places = new Map<string, number>()
  return chosen.map((c) => {
    const place = (places.get(c.tenant) ?? 0) + 1
    places.set(c.tenant, place)
    return (h.get(c.tenant) ?? 0) + place
  })
}

describe("Outbox.claimOrder", () => {
  it.prop("without fairShare: the oldest due first, `limit` of them", [candidates, limit], ([cs, n]) => {
    assert.deepStrictEqual(Outbox.claimOrder(cs, { limit: n }), dueOrder(cs).slice(0, n))
    assert.deepStrictEqual(
      Outbox.claimOrder(cs, { limit: n, fairShare: 0, held: new Map([["i:1", 9]]) }),
      dueOrder(cs).slice(0, n)
    )
  })

  it.prop("takes min(limit, candidates), each once, and of each tenant its oldest due first", [
    candidates,
    limit,
    share,
    held
  ], ([cs, n, s, h]) => {
    const chosen = Outbox.claimOrder(cs, { limit: n, fairShare: s, held: h })
    assert.strictEqual(chosen.length, Math.min(n, cs.length))
    assert.strictEqual(new Set(chosen.map((c) => c.mailbox)).size, chosen.length)
    for (const tenant of new Set(cs.map((c) => c.tenant))) {
      const mine = chosen.filter((c) => c.tenant === tenant).map((c) => c.mailbox)
      const oldest = dueOrder(cs.filter((c) => c.tenant === tenant)).slice(0, mine.length).map((c) => c.mailbox)
      assert.deepStrictEqual([...mine].sort(), [...oldest].sort())
    }
  })

  it.prop("beyond its share, a tenant gets a mailbox only when no tenant within its share has one due", [
    candidates,
    limit,
    share,
    held
  ], ([cs, n, s, h]) => {
    const chosen = Outbox.claimOrder(cs, { limit: n, fairShare: s, held: h })
    const taken = new Set(chosen.map((c) => c.mailbox))
    const rankOf = ranks(chosen, h)
    const overShare = rankOf.some((r) => r > s)
    if (!overShare) return
    // a candidate left behind whose tenant is still within its share (counting what was taken) would have come first
    const after = new Map<string, number>()
    for (const c of chosen) after.set(c.tenant, (after.get(c.tenant) ?? 0) + 1)
    for (const c of cs) {
      if (taken.has(c.mailbox)) continue
      const rank = (h.get(c.tenant) ?? 0) + (after.get(c.tenant) ?? 0) + 1
      assert.isAbove(rank, s, `${c.mailbox} (${c.tenant}) was within its share but left for one beyond`)
    }
  })

  it("a quiet tenant's one mailbox comes before a flooding tenant's older ones once the flood holds its share", () => {
    const flood = Array.from({ length: 100 }, (_, i) => ({
      mailbox: `github:us:1:${String(i).padStart(3, "0")}`,
      tenant: Mailbox.tenant.integration(1),
      nextAttemptAt: i
    }))
    const quiet = { mailbox: "github:us:2", tenant: Mailbox.tenant.integration(2), nextAttemptAt: 1_000 }
    const held = new Map([[Mailbox.tenant.integration(1), 15]])
    assert.deepStrictEqual(Outbox.claimOrder([...flood, quiet], { limit: 1, fairShare: 2, held }), [quiet])
    // fairness off: the oldest due first, the quiet one waits for the flood
    assert.deepStrictEqual(Outbox.claimOrder([...flood, quiet], { limit: 1, fairShare: 0, held }), [flood[0]])
    // nothing else due: the flood fills the slots (work-conserving)
    assert.deepStrictEqual(Outbox.claimOrder(flood, { limit: 3, fairShare: 2, held }), flood.slice(0, 3))
  })
})
