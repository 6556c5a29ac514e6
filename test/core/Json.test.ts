import { idModulo, isTruthy, parseJsonObject } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"

describe("isTruthy (Python's truthiness)", () => {
  it("matches Python for the falsy values", () => {
    for (const v of [null, undefined, false, 0, -0, 0.0, "", {}, []]) assert.isFalse(isTruthy(v), JSON.stringify(v))
  })
  it("matches Python for truthy values", () => {
    for (const v of [true, 1, -1, 0.1, "0", " ", "false", [0], [null], { a: null }, { "": 0 }]) {
      assert.isTrue(isTruthy(v), JSON.stringify(v))
    }
  })
  it.prop("any JSON value is truthy exactly when Python's bool() says so", [fc.jsonValue()], ([v]) => {
    const python = !(v === null || v === false || v === 0 || v === "" ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0))
    assert.strictEqual(isTruthy(v), python)
  }, { fastCheck: { numRuns: 300 } })
})

describe("idModulo (Python's int(x) % m)", () => {
  it.prop("agrees with BigInt arithmetic for integers and numeric strings", [fc.bigInt()], ([n]) => {
    const expected = Number(((n % 100n) + 100n) % 100n)
    assert.strictEqual(idModulo(n.toString(), 100), expected)
    if (Number.isSafeInteger(Number(n)) && BigInt(Number(n)) === n) {
      assert.strictEqual(idModulo(Number(n), 100), expected)
    }
  }, { fastCheck: { numRuns: 300 } })
  it("is undefined for what is not an integer", () => {
    for (const v of [1.5, "1.5", "abc", "", null, undefined, true, {}, [], Number.NaN, Infinity, "1e3"]) {
      assert.isUndefined(idModulo(v, 100), JSON.stringify(v))
    }
  })
})

describe("parseJsonObject", () => {
  const enc = (s: string) => new TextEncoder().encode(s)
  it("returns the object, and {} for anything else", () => {
    assert.deepStrictEqual(parseJsonObject(enc("{\"a\":1}")), { a: 1 })
    for (const s of ["", "[]", "1", "null", "\"x\"", "{", "\u0000"]) assert.deepStrictEqual(parseJsonObject(enc(s)), {})
  })
})
