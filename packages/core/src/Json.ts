/**
 * Reading webhook bodies the way the reference (a Python service) does.
 *
 * @since 0.1.0
 */

const decoder = new TextDecoder("utf-8")

/**
 * The body as a JSON object; anything that is not valid JSON, or JSON that is not an object, is `{}`.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseJsonObject = (body: Uint8Array): Readonly<Record<string, unknown>> => {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(body))
  } catch {
    return {}
  }
  return isRecord(value) ? value : {}
}

/**
 * @since 0.1.0
 * @category utils
 */
export const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Python's truthiness: `None`, `False`, `0`, `0.0`, `""`, `{}` and `[]` are false; everything else is true.
 *
 * @since 0.1.0
 * @category utils
 */
export const isTruthy = (value: unknown): boolean => {
  if (value === null || value === undefined || value === false || value === 0 || value === "") return false
  if (typeof value === "number" && Number.isNaN(value)) return true
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === "object") {
    for (const _ in value) return true
    return false
  }
  return true
}

/**
 * The non-negative remainder of an integer id (a JSON number or a numeric string, any size) modulo `m`, as
 * Python's `int(x) % m` gives it; `undefined` for anything else.
 *
 * @since 0.1.0
 * @category utils
 */
export const idModulo = (value: unknown, m: number): number | undefined => {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) return undefined
    return ((value % m) + m) % m
  }
  if (typeof value === "string") {
    const trimmed = value.trim()
    if (!/^[+-]?\d+$/.test(trimmed)) return undefined
    const r = Number(BigInt(trimmed) % BigInt(m))
    return (r + m) % m
  }
  return undefined
}

/**
 * `obj.a.b.c` for a path of keys, `undefined` where any step is not an object.
 *
 * @since 0.1.0
 * @category utils
 */
export const getPath = (value: unknown, ...keys: ReadonlyArray<string>): unknown => {
  let current = value
  for (const key of keys) {
    if (!isRecord(current)) return undefined
    current = current[key]
  }
  return current
}
