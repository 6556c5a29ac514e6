/**
 * The one redactor of paths and text for logs and CLI output. It works by structure, not by route: it does not
 * matter how the route is spelled (letter case, `-`/`_`, repeated separators, double slashes, percent-encoding), nor
 * whether the path was routed at all.
 *
 * - a path segment that follows an `issue-updated` segment (any spelling) is the Jira Server token → `<token>`;
 * - any path segment, query name or query value that holds a JWT (dot-separated base64url parts whose first part
 *   decodes to a JSON object, e.g. `eyJ…`), once percent-decoded and stripped of white space → `<jwt>`;
 * - any `jwt` query value → `<jwt>`.
 *
 * @since 0.2.0
 */
import * as Jose from "jose"

/**
 * What a Jira Server token segment becomes.
 *
 * @since 0.2.0
 * @category constants
 */
export const TOKEN = "<token>"

/**
 * What a JWT (a segment or query value holding one, or a `jwt` query value) becomes.
 *
 * @since 0.2.0
 * @category constants
 */
export const JWT = "<jwt>"

// Every secret this module finds needs one of these in the raw text: a JWT needs a dot (or `%2E`), the token rule an
// `issue` segment, the query rule a `jwt` name. Text without any of them is returned as it is (the hot path).
const MAYBE = /[%.]|issue|jwt/i

// The same texts come back on every request (one integration's path and token, a provider's messages and reasons):
// their redaction is remembered, a bounded map emptied when full (the redactor is a pure function of its input, so
// a hit answers exactly what the computation would). Long texts (a cause's stack) are not kept.
const MEMO_CAPACITY = 4096
const MEMO_MAX_LENGTH = 2048
const memo = new Map<string, string>()
const textMemo = new Map<string, string>()
const remember = (text: string, redacted: string): void => {
  if (text.length > MEMO_MAX_LENGTH) return
  if (memo.size >= MEMO_CAPACITY) memo.clear()
  memo.set(text, redacted)
}

const PERCENT = /%([0-9A-Fa-f]{2})/g

/** Percent-decoding byte by byte, repeated (double encoding), never failing on a malformed sequence. */
const decodeAll = (text: string): string => {
  let out = text
  for (let i = 0; i < 4 && out.includes("%"); i++) {
    const next = out.replace(PERCENT, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    if (next === out) break
    out = next
  }
  return out
}

// white space and control characters: a JWT decoder skips some of them, so they must not hide a token from us
// eslint-disable-next-line no-control-regex
const IGNORED = /[\s\u0000-\u001f\u007f]+/g
// eslint-disable-next-line no-control-regex
const HAS_IGNORED = /[\s\u0000-\u001f\u007f]/
const stripIgnored = (text: string): string => (HAS_IGNORED.test(text) ? text.replace(IGNORED, "") : text)
const NOT_JWT_CHAR = /[^A-Za-z0-9_\-+=.]+/
// the first base64 character of `{`, of JSON white space, and of a byte-order mark
const HEADER_FIRST = "eICD7"

/** A base64url part that decodes (as a JOSE header does) to a JSON object. */
const isHeader = (part: string): boolean => {
  if (part.length < 2) return false
  if (part.startsWith("eyJ")) return true
  if (!HEADER_FIRST.includes(part[0]!)) return false
  try {
    Jose.decodeProtectedHeader(`${part}..`)
    return true
  } catch {
    return false
  }
}

/**
 * Whether `text` holds a JWT anywhere (percent-decoded, white space ignored): a base64url part that decodes to a JSON
 * object, followed by at least one more dot-separated part.
 *
 * @since 0.2.0
 * @category redaction
 */
export const containsJwt = (text: string): boolean => {
  if (!text.includes(".") && !text.includes("%")) return false
  const plain = stripIgnored(decodeAll(text))
  if (!plain.includes(".")) return false
  for (const run of plain.split(NOT_JWT_CHAR)) {
    if (!run.includes(".")) continue
    const parts = run.split(".")
    for (let i = 0; i + 1 < parts.length; i++) if (isHeader(parts[i]!)) return true
  }
  return false
}

/** A segment name compared by structure: decoded, lower case, runs of `-`, `_` and white space as one `_`. */
const normalize = (decoded: string): string => decoded.toLowerCase().replace(/[-_\s]+/g, "_").replace(/^_+|_+$/g, "")

const ISSUE = /issue/i
const isTokenKey = (decoded: string): boolean => ISSUE.test(decoded) && normalize(decoded) === "issue_updated"
const isDot = (decoded: string): boolean => decoded === "." || decoded === ".."

const SEPARATOR = /[/\\]/
const SEPARATORS = /[/\\]/g

const redactSegments = (bare: string): string => {
  const segments = bare.split("/")
  let tokenNext = false
  for (let i = 0; i < segments.length; i++) {
    const raw = segments[i]!
    if (raw === "") continue
    const decoded = decodeAll(raw)
    if (containsJwt(decoded)) {
      segments[i] = tokenNext ? TOKEN : JWT
      tokenNext = false
      continue
    }
    // a decoded segment may hold separators of its own (`%2F`, `\`): look at its pieces too
    let redacted = false
    for (const piece of SEPARATOR.test(decoded) ? decoded.split(SEPARATORS) : [decoded]) {
      const p = stripIgnored(piece)
      if (p === "" || isDot(p)) continue
      if (tokenNext) {
        redacted = true
        tokenNext = false
      } else if (isTokenKey(p)) tokenNext = true
    }
    if (redacted) segments[i] = TOKEN
  }
  return segments.join("/")
}

const JWT_NAME = /jwt|%/i
const isJwtName = (name: string): boolean => JWT_NAME.test(name) && normalize(stripIgnored(decodeAll(name))) === "jwt"

const redactQuery = (query: string): string =>
  query.split("&").map((pair) => {
    const eq = pair.indexOf("=")
    const name = eq === -1 ? pair : pair.slice(0, eq)
    if (containsJwt(name)) return JWT
    if (eq === -1) return pair
    const value = pair.slice(eq + 1)
    if (value === JWT) return pair
    if (isJwtName(name) || containsJwt(value)) return `${name}=${JWT}`
    return pair
  }).join("&")

/**
 * A path (with its query) for a log line or CLI output: Jira Server tokens → `<token>`, JWTs and `jwt` query values →
 * `<jwt>`, whatever the spelling of the route. Everything else is kept as it came. Idempotent.
 *
 * @since 0.2.0
 * @category redaction
 */
export const redactPath = (path: string): string => {
  if (!MAYBE.test(path)) return path
  const cached = memo.get(path)
  if (cached !== undefined) return cached
  const q = path.indexOf("?")
  const out = q === -1 ? redactSegments(path) : `${redactSegments(path.slice(0, q))}?${redactQuery(path.slice(q + 1))}`
  remember(path, out)
  // the redacted text is a fixed point (idempotent): a log line that redacts it again finds it here
  remember(out, out)
  return out
}

const WORD = /[^\s"'`]+/g

/**
 * Free text (a message, an error, a JSON line) with every path or word in it redacted as `redactPath` does.
 *
 * @since 0.2.0
 * @category redaction
 */
export const redactText = (text: string): string => {
  if (!MAYBE.test(text)) return text
  const cached = textMemo.get(text)
  if (cached !== undefined) return cached
  const out = text.replace(WORD, redactPath)
  if (text.length <= MEMO_MAX_LENGTH) {
    if (textMemo.size >= MEMO_CAPACITY) textMemo.clear()
    textMemo.set(text, out)
    textMemo.set(out, out)
  }
  return out
}
