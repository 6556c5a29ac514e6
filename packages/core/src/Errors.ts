/**
 * Typed errors that cross a boundary (HTTP answers, logs, the CLI).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * An organization names a region that the directory does not have. Answered 500 `region_not_found`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RegionNotFound extends Schema.TaggedError<RegionNotFound>()("RegionNotFound", {
  region: Schema.String
}) {
  override get message() {
    return `region ${JSON.stringify(this.region)} is not in the directory`
  }
}

/**
 * A Jira Server webhook token failed one of the checks of docs/routing.md#jira-server; `reason` is the reference's text.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/**
 * The store could not read or write durably. On the write path this is answered 503 with `Retry-After`, never 202.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  operation: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `store unavailable during ${this.operation}`
  }
}

/**
 * A worker wrote to a mailbox whose lease it no longer holds: the write is refused and the worker stops.
 *
 * @since 0.1.0
 * @category errors
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  mailbox: Schema.String,
  owner: Schema.String
}) {
  override get message() {
    return `lease on ${this.mailbox} is no longer held by ${this.owner}`
  }
}

/**
 * A request to a region (or the control upstream) failed before an answer: refused, reset, DNS, or timed out.
 *
 * @since 0.1.0
 * @category errors
 */
export class RegionTransportError extends Schema.TaggedError<RegionTransportError>()("RegionTransportError", {
  region: Schema.String,
  kind: Schema.Literal("timeout", "connection"),
  detail: Schema.String
}) {
  override get message() {
    return `${this.kind === "timeout" ? "timed out" : "could not reach"} ${this.region}: ${this.detail}`
  }
}
