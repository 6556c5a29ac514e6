// The http worker's lease owner: `<host>:<pid>:<name>`, the name from core's IdGenerator (so tests can fix it), not
// a random call of its own.
import { IdGenerator } from "@cellgate/core"
import { Worker } from "@cellgate/http"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Os from "node:os"

describe("Worker.owner", () => {
  it.effect("is <host>:<pid>:<IdGenerator.workerName>: deterministic under IdGenerator.layerTest", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Worker.owner, `${Os.hostname()}:${process.pid}:worker-1`)
      assert.strictEqual(yield* Worker.owner, `${Os.hostname()}:${process.pid}:worker-2`)
    }).pipe(Effect.provide(IdGenerator.layerTest)))

  it.effect("by default the name is worker-<uuid>, fresh each time", () =>
    Effect.gen(function*() {
      const a = yield* Worker.owner
      const b = yield* Worker.owner
      assert.match(
        a,
        new RegExp(`^${Os.hostname().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:${process.pid}:worker-[0-9a-f-]{36}$`)
      )
      assert.notStrictEqual(a, b)
    }))
})
