// Issue 10 item 13: `Expect: 100-continue` with a declared length over `server.maxBodyBytes` is answered 413 at once,
// never `100 Continue` first (which invites the sender to push the whole body). Within the limit, `100 Continue`
// comes, and the request is handled once the body follows.
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Net from "node:net"
import { exchange } from "./RawHttp.js"

const LIMIT = 1024
let server: EmbeddedServer

beforeAll(async () => {
  server = await makeServer({
    server: { maxBodyBytes: LIMIT },
    store: { kind: "memory", ephemeral: true }
  }, { port: 0, worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
})

const head = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: gateway.test\r\ncontent-type: application/json\r\n` +
  `content-length: ${length}\r\nexpect: 100-continue\r\n\r\n`

describe("Expect: 100-continue", () => {
  it("a declared length over the limit: 413 at once, never 100, and the connection is closed", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: LIMIT + 1, max: 10 * 1024 * 1024 * 1024 }),
        fc.constantFrom("/extensions/github/webhook/", "/extensions/jira-server/issue-updated/x/", "/other"),
        async (length, path) => {
          // headers only: a client that honours the expectation sends nothing more until it is told to
          const answer = await exchange(server.url, head(path, length))
          assert.deepStrictEqual(answer.statuses, [413], answer.raw)
          assert.notInclude(answer.raw, "100 Continue")
          assert.strictEqual(JSON.parse(answer.body).error, "payload_too_large")
          assert.isTrue(answer.closed)
        }
      ),
      { numRuns: 25 }
    )
  })

  it("within the limit: 100 Continue, then the answer once the body is sent", async () => {
    const body = "{}"
    const { port } = new URL(server.url)
    const statuses = await new Promise<Array<string>>((resolve, reject) => {
      const socket = Net.connect({ host: "127.0.0.1", port: Number(port) })
      let raw = ""
      let sentBody = false
      socket.setEncoding("latin1")
      socket.on("connect", () => socket.write(head("/other", body.length)))
      socket.on("data", (chunk: string) => {
        raw += chunk
        if (!sentBody && raw.includes("100 Continue\r\n\r\n")) {
          sentBody = true
          socket.write(body)
        }
        if (/\r\n\r\n[\s\S]*HTTP\/1\.1 (?!100)\d{3}[\s\S]*\r\n\r\n/.test(raw)) {
          socket.destroy()
          resolve([...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]!))
        }
      })
      socket.on("error", reject)
      setTimeout(() => {
        socket.destroy()
        reject(new Error(`no answer: ${raw}`))
      }, 5_000)
    })
    // the control side answers 404 here (no upstream): what matters is 100 first, then a final answer
    assert.deepStrictEqual(statuses, ["100", "404"])
  })
})
