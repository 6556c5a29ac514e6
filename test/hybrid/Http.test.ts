// docs/routing.md#deadline-aware-hybrid through real HTTP, on SQLite and PostgreSQL: a test provider answers Hybrid decisions (the
// interpretation is core's, whoever the provider); region stubs answer in 100 ms, in 2.9 s, never (the live attempt),
// 500, or refuse connections; a Slack response-URL stub and a Discord API stub receive the replies.
import type { IntegrationId, RegionName } from "@cellgate/core"
import { Hybrid, Outbox, Provider, Providers } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import type { Received, Stub } from "../support/Http.js"
import { call, closedPort, startStub, tempDir } from "../support/Http.js"
import { adminUrl, urlFor, withClient } from "../support/Postgres.js"

const BUDGET = 2_000
/** What the provider may wait beyond the budget (the stored copy's commit, the loopback round trips). */
const MARGIN = 700

let replyStub: Stub
let discordStub: Stub

const testProvider: Provider.Provider = {
  name: "hybrid_test",
  routes: ["<mode>/<regions>/<reply>/<case>/"],
  match: Provider.pathMatcher([["hybrid", /^(first|all)\/([a-z,]+)\/(slack|discord|none)\/([a-z0-9-]+)\/$/]]),
  route: (request, match) => {
    const regions = match.params[1]!.split(",").sort() as Array<RegionName>
    const mode = match.params[0] as "first" | "all"
    const reply = match.params[2]!
    const query = new URLSearchParams(request.path.split("?")[1] ?? "")
    const dedupe = query.get("dedupe")
    return Effect.succeed({
      provider: "hybrid_test",
      decision: new Hybrid({
        regions,
        mode,
        budgetMs: BUDGET,
        provider: "hybrid_test",
        integrationId: 7 as IntegrationId,
        mailboxPrefix: "hybrid_test",
        fallback: reply === "discord"
          ? {
            status: 200,
            headers: { "content-type": "application/json" },
            body: "{\"type\":5,\"data\":{\"flags\":64}}"
          }
          : { status: 200, headers: {}, body: "" },
        store: query.get("store") !== "0",
        replyTarget: reply === "slack"
          ? { kind: "slack", url: `${replyStub.url}/hooks/${match.params[3]}` }
          : reply === "discord"
          ? {
            kind: "discord",
            applicationId: "app-1",
            token: Redacted.make(`tok-${match.params[3]}`),
            apiBaseUrl: `${discordStub.url}/api/v10`
          }
          : null,
        dedupe: dedupe === null ? null : { key: dedupe, ttlMs: 600_000, retry: query.get("retry") !== "0" }
      }),
      reason: `hybrid ${mode}`,
      integration: null,
      organizations: [],
      regions
    })
  }
}

const idOf = (r: Received) => r.headers["x-cellgate-delivery-id"] as string
const forCase = (stub: Stub, c: string) =>
  stub.received.filter((r) => r.path.includes(`/${c}/`) || r.path.endsWith(`/${c}`))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const until = async (check: () => boolean, ms = 10_000) => {
  for (const start = Date.now(); !check();) {
    if (Date.now() - start > ms) throw new Error("condition not met in time")
    await sleep(20)
  }
}

const suite = (kind: "sqlite" | "postgres") =>
  describe(`hybrid on ${kind}`, () => {
    let fast: Stub // "a": 100 ms
    let slow: Stub // "b": 2.9 s, every time
    let never: Stub // "c": the live attempt never answers; the stored copy is answered
    let failing: Stub // "d": 500 live, 200 stored
    let server: EmbeddedServer
    let cleanup: () => Promise<void> = async () => {}
    const seen = new Set<string>()

    beforeAll(async () => {
      replyStub = await startStub(() => ({ status: 200, body: "ok" }))
      discordStub = await startStub(() => ({ status: 200, body: "{}" }))
      fast = await startStub(() => ({
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{\"text\":\"fast\"}",
        delayMs: 100
      }))
      slow = await startStub(() => ({
        status: 200,
        headers: { "content-type": "application/json" },
        body: "{\"text\":\"slow\",\"data\":{\"content\":\"slow answer\"}}",
        delayMs: 2_900
      }))
      never = await startStub((r) => {
        const first = !seen.has(idOf(r))
        seen.add(idOf(r))
        return first ? { status: 200, delayMs: 60_000 } : { status: 200, body: "plain text from c" }
      })
      failing = await startStub((r) => (r.headers["x-cellgate-mailbox"] === undefined
        ? { status: 500, body: "boom" }
        : { status: 200, headers: { "content-type": "application/json" }, body: "{\"text\":\"d later\"}" })
      )
      const refused = await closedPort()
      let store: Record<string, unknown>
      if (kind === "sqlite") {
        const tmp = tempDir()
        store = { kind: "sqlite", path: `${tmp.dir}/cellgate.db` }
        cleanup = async () => tmp.cleanup()
      } else {
        const name = `cellgate_test_hybrid_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
        await Effect.runPromise(withClient(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)))
        store = { kind: "postgres", url: urlFor(name) }
        cleanup = () =>
          Effect.runPromise(
            withClient(adminUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).pipe(
              Effect.ignore
            )
          )
      }
      server = await makeServer({
        store: store as never,
        delivery: { pollIntervalMs: 50, backoffBaseMs: 200, requestTimeoutMs: 5_000, maxAttempts: 5 },
        directory: {
          regions: [
            { name: "a", url: fast.url },
            { name: "b", url: slow.url },
            { name: "c", url: never.url },
            { name: "d", url: failing.url },
            { name: "e", url: `http://127.0.0.1:${refused}` }
          ]
        }
      }, {
        port: 0,
        providers: Providers.layer({}, [testProvider]),
        log: process.env.HYBRID_LOG
          ? (l) => console.log(l)
          : () => {}
      })
    })

    afterAll(async () => {
      await server?.close()
      for (const s of [fast, slow, never, failing, replyStub, discordStub]) await s?.close()
      await cleanup()
    })

    const post = async (p: string) => {
      const started = Date.now()
      const reply = await call(server.url, `/extensions/hybrid-test/${p}`, {
        body: "{\"x\":1}",
        headers: { "content-type": "application/json" }
      })
      return { ...reply, ms: Date.now() - started }
    }
    const stored = () => server.runPromise(Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes))
    const payloadsOf = (mailbox: string) => server.runPromise(Effect.flatMap(Outbox.Outbox, (o) => o.head(mailbox, 10)))

    it("100 ms: relayed live, nothing stored, no reply", async () => {
      const reply = await post("first/a/slack/fast1/")
      expect(reply.status).toBe(200)
      expect(reply.text).toBe("{\"text\":\"fast\"}")
      expect(reply.headers["x-cellgate-region"]).toBe("a")
      expect(reply.ms).toBeLessThan(1_000)
      await sleep(300)
      expect(forCase(fast, "fast1")).toHaveLength(1)
      expect(forCase(replyStub, "fast1")).toHaveLength(0)
      expect((await stored()).filter((m) => m.mailbox.startsWith("hybrid_test:a"))).toHaveLength(0)
    })

    it("2.9 s: fallback within the budget, stored with the same delivery id, replied to once", async () => {
      const reply = await post("first/b/slack/slow1/")
      expect(reply.status).toBe(200)
      expect(reply.text).toBe("")
      expect(reply.ms).toBeGreaterThanOrEqual(BUDGET - 50)
      expect(reply.ms).toBeLessThan(BUDGET + MARGIN)
      // the interrupted live attempt, then the stored copy (answered after 2.9 s)
      await until(() => forCase(slow, "slow1").length === 2)
      const [live, copy] = forCase(slow, "slow1")
      expect(idOf(copy!)).toBe(idOf(live!))
      expect(copy!.headers["x-cellgate-mailbox"]).toBe("hybrid_test:b:7")
      expect(copy!.body.toString()).toBe("{\"x\":1}")
      await until(() => forCase(replyStub, "slow1").length === 1)
      const sent = forCase(replyStub, "slow1")[0]!
      expect(sent.method).toBe("POST")
      expect(sent.path).toBe("/hooks/slow1")
      expect(sent.headers["content-type"]).toBe("application/json")
      expect(sent.body.toString()).toBe("{\"text\":\"slow\",\"data\":{\"content\":\"slow answer\"}}")
      await sleep(500)
      expect(forCase(replyStub, "slow1")).toHaveLength(1)
      expect(forCase(slow, "slow1")).toHaveLength(2)
    }, 20_000)

    it("never: fallback at the budget; the stored copy's text answer goes to Slack as {text}", async () => {
      const reply = await post("first/c/slack/never1/")
      expect(reply.status).toBe(200)
      expect(reply.ms).toBeGreaterThanOrEqual(BUDGET - 50)
      expect(reply.ms).toBeLessThan(BUDGET + MARGIN)
      await until(() => forCase(replyStub, "never1").length === 1)
      const [live, copy] = forCase(never, "never1")
      expect(idOf(copy!)).toBe(idOf(live!))
      expect(JSON.parse(forCase(replyStub, "never1")[0]!.body.toString())).toEqual({ text: "plain text from c" })
    }, 20_000)

    it("5xx: fallback at once; Discord gets a PATCH of the answer's data to @original", async () => {
      const reply = await post("first/d/discord/fail1/")
      expect(reply.status).toBe(200)
      expect(JSON.parse(reply.text)).toEqual({ type: 5, data: { flags: 64 } })
      expect(reply.ms).toBeLessThan(1_000)
      await until(() => discordStub.received.some((r) => r.path.includes("tok-fail1")))
      const sent = discordStub.received.filter((r) => r.path.includes("tok-fail1"))
      expect(sent).toHaveLength(1)
      expect(sent[0]!.method).toBe("PATCH")
      expect(sent[0]!.path).toBe("/api/v10/webhooks/app-1/tok-fail1/messages/@original")
      // no `data` in the answer: the whole JSON object
      expect(JSON.parse(sent[0]!.body.toString())).toEqual({ text: "d later" })
    }, 20_000)

    it("refused: fallback at once, stored with its reply target (retried while the region is down)", async () => {
      const reply = await post("first/e/slack/refused1/")
      expect(reply.status).toBe(200)
      expect(reply.ms).toBeLessThan(1_000)
      const [p] = await payloadsOf("hybrid_test:e:7")
      expect(p!.replyTarget).toEqual({ kind: "slack", url: `${replyStub.url}/hooks/refused1` })
      expect(p!.path).toBe("/extensions/hybrid-test/first/e/slack/refused1/")
    })

    it("store: false (options-load): fallback, never stored", async () => {
      const reply = await post("first/c/none/opts1/?store=0")
      expect(reply.status).toBe(200)
      expect(reply.ms).toBeLessThan(BUDGET + MARGIN)
      await sleep(300)
      expect(forCase(never, "opts1")).toHaveLength(1)
      expect((await payloadsOf("hybrid_test:c:7")).filter((p) => p.path.includes("opts1"))).toHaveLength(0)
    }, 10_000)

    it("all: the 2xx region answers the provider; only the other is stored, without a reply target", async () => {
      const reply = await post("all/a,c/slack/all1/")
      expect(reply.status).toBe(200)
      expect(reply.text).toBe("{\"text\":\"fast\"}")
      expect(reply.headers["x-cellgate-region"]).toBe("a")
      expect(reply.ms).toBeLessThan(BUDGET + MARGIN)
      await until(() => forCase(never, "all1").length === 2)
      const [live, copy] = forCase(never, "all1")
      expect(idOf(copy!)).toBe(idOf(live!))
      expect(idOf(forCase(fast, "all1")[0]!)).toBe(idOf(live!))
      await sleep(500)
      expect(forCase(fast, "all1")).toHaveLength(1)
      expect(forCase(replyStub, "all1")).toHaveLength(0)
    }, 20_000)

    it("all, none 2xx in time: fallback; every region stored with the reply target; one reply in all", async () => {
      const reply = await post("all/c,d/slack/all2/")
      expect(reply.status).toBe(200)
      expect(reply.text).toBe("")
      await until(() => forCase(never, "all2").length === 2 && forCase(failing, "all2").length === 2)
      await until(() => forCase(replyStub, "all2").length >= 1)
      await sleep(500)
      expect(forCase(replyStub, "all2")).toHaveLength(1)
    }, 20_000)

    it("dedupe: an event key already accepted is answered 200 and neither forwarded nor stored", async () => {
      const key = `ev-${kind}-${Date.now()}`
      const first = await post(`first/a/none/dup1/?dedupe=${key}`)
      expect(first.text).toBe("{\"text\":\"fast\"}")
      const again = await post(`first/a/none/dup1/?dedupe=${key}`)
      expect(again.status).toBe(200)
      expect(again.text).toBe("")
      const other = await post(`first/a/none/dup1/?dedupe=${key}-other`)
      expect(other.text).toBe("{\"text\":\"fast\"}")
      await sleep(200)
      expect(forCase(fast, "dup1")).toHaveLength(2)
    })

    it("dedupe: only a retry is dropped; a first delivery of a recorded key still goes through", async () => {
      const key = `ev-${kind}-noretry-${Date.now()}`
      expect((await post(`first/a/none/dup2/?dedupe=${key}&retry=0`)).text).toBe("{\"text\":\"fast\"}")
      // the same key again, not marked a retry: forwarded (the record stays its first owner's)
      expect((await post(`first/a/none/dup2/?dedupe=${key}&retry=0`)).text).toBe("{\"text\":\"fast\"}")
      // a retry of it: dropped
      const retry = await post(`first/a/none/dup2/?dedupe=${key}`)
      expect(retry.status).toBe(200)
      expect(retry.text).toBe("")
      await sleep(200)
      expect(forCase(fast, "dup2")).toHaveLength(2)
    })
  })

suite("sqlite")
suite("postgres")
