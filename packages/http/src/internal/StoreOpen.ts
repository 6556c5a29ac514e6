/**
 * Why a store could not be opened, in words an operator acts on: connection refused, unknown host, authentication
 * refused, database missing, timed out — with the driver's own message, and the store named without its password.
 *
 * @internal
 */
import { StoreUnavailable } from "@cellgate/core"
import { Redacted } from "effect"
import type { StoreConfig } from "../Config.js"

interface Cause {
  readonly code?: unknown
  readonly message?: unknown
  readonly hostname?: unknown
  readonly cause?: unknown
}

/** The innermost cause with a `code` (a Node socket error, a PostgreSQL error), else the innermost. */
const rootCause = (error: unknown): Cause | undefined => {
  let current: unknown = error
  let found: Cause | undefined
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const c = current as Cause
    if (c.code !== undefined) return c
    found = c
    current = c.cause
  }
  return found
}

/** `postgres://user@host:port/database`: no password, no query (a `?password=` stays out too). */
export const describePostgres = (url: string): string => {
  try {
    const u = new URL(url)
    const user = u.username === "" ? "" : `${decodeURIComponent(u.username)}@`
    return `${u.protocol}//${user}${u.host}${u.pathname}`
  } catch {
    return "postgres (the URL does not parse)"
  }
}

const describeStore = (store: StoreConfig): string => {
  switch (store.kind) {
    case "postgres":
      return `the postgres store ${describePostgres(Redacted.value(store.url))}`
    case "sqlite":
      return `the sqlite store ${store.path}`
    case "memory":
      return "the memory store"
  }
}

/** The reason, from the cause's code (Node's `ECONNREFUSED`…, PostgreSQL's SQLSTATE). */
const reason = (cause: Cause | undefined): string => {
  const code = typeof cause?.code === "string" ? cause.code : undefined
  const message = typeof cause?.message === "string" ? cause.message : undefined
  const detail = message === undefined ? "" : `: ${message}`
  if (code === "ECONNREFUSED") return `connection refused (nothing listens there)${detail}`
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") return `unknown host${detail}`
  if (code === "ETIMEDOUT" || (message !== undefined && /timed? ?out/i.test(message))) return `timed out${detail}`
  if (code === "ECONNRESET" || code === "EPIPE") return `connection closed by the server${detail}`
  // SQLSTATE class 28: invalid authorization (28P01 wrong password, 28000 no such role / not allowed to log in)
  if (code !== undefined && code.startsWith("28")) return `authentication refused by the server${detail}`
  if (code === "3D000") return `database does not exist${detail}`
  if (code === "42501") return `permission denied${detail}`
  return message === undefined ? "unknown cause" : `${code === undefined ? "" : `${code} `}${message}`.trim()
}

/**
 * `error` (a `StoreUnavailable` from opening `store`) restated: `open the postgres store postgres://u@h:1/db:
 * connection refused (…)`. The password never appears: the store is named by `describePostgres` and the drivers'
 * messages do not carry it; the CLI's printer redacts what it prints besides.
 */
export const explain = (store: StoreConfig, error: StoreUnavailable): StoreUnavailable =>
  new StoreUnavailable({
    operation: `open ${describeStore(store)}${error.operation.startsWith("open ") ? "" : ` (${error.operation})`}: ` +
      reason(rootCause(error.cause)),
    cause: error.cause
  })
