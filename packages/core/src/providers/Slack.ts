/**
 * Slack: `/extensions/slack/commands/`, `action/`, `options-load/` and `event/` (docs/routing.md#slack, docs/routing.md#deadline-aware-hybrid).
 *
 * Every request is verified before anything else is read: `X-Slack-Signature` must be `v0=` + hex HMAC-SHA256 of
 * `v0:<X-Slack-Request-Timestamp>:<raw body>` with `providers.slack.signingSecret` (constant time), and the timestamp
 * within 300 s of the `Clock`. Without a signing secret every Slack webhook path answers 401: a Slack body is
 * trivially forged, so it is never routed unverified. The integration is the workspace (`team_id`, `team.id`,
 * `user.team_id`, `authorizations[0].team_id`); the decision is a `Hybrid` (the live forward within
 * `providers.slack.syncBudgetMs`, else an empty 200 and a stored copy replied to the request's `response_url`).
 *
 * @since 0.2.0
 */
import type { Redacted } from "effect"
import { Clock, Effect, Option } from "effect"
import type { Integration, ReplyTarget, RouteOutcome, WebhookRequest } from "../Domain.js"
import { respond, respondError } from "../Domain.js"
import { getPath, isRecord, parseJsonObject } from "../Json.js"
import { countDropped, repliesTotal } from "../Metrics.js"
import type { Ports, Provider, RouteMatch, SlackOptions } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import { regionNames, resolveWith } from "../Resolve.js"
import { activeIntegration, constantTimeEquals, errorOutcome, header, hmacSha256Hex, outcome } from "./Common.js"
import {
  DEDUPE_TTL_MS,
  DEFAULT_SYNC_BUDGET_MS,
  hybrid,
  jsonFallback,
  replyHost,
  replyHostAllowed
} from "./Interactive.js"

/**
 * @since 0.2.0
 * @category constants
 */
export const NAME = "slack"

/**
 * How far `X-Slack-Request-Timestamp` may be from now, in seconds (Slack's own verifiers use 5 minutes).
 *
 * @since 0.2.0
 * @category constants
 */
export const TIMESTAMP_WINDOW_SECONDS = 300

/**
 * `providers.slack.replyHosts` when the configuration does not say.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_REPLY_HOSTS: ReadonlyArray<string> = ["hooks.slack.com"]

/**
 * `providers.slack` with its defaults.
 *
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  readonly signingSecret: Option.Option<Redacted.Redacted<string>>
  readonly syncBudgetMs: number
  readonly replyHosts: ReadonlyArray<string>
}

/**
 * `providers.slack` (`ProviderSecrets.slack`) with the defaults of docs/interfaces.md filled in.
 *
 * @since 0.2.0
 * @category models
 */
export const settings = (options: SlackOptions | undefined): Settings => ({
  signingSecret: Option.fromNullable(options?.signingSecret),
  syncBudgetMs: options?.syncBudgetMs ?? DEFAULT_SYNC_BUDGET_MS,
  replyHosts: options?.replyHosts ?? DEFAULT_REPLY_HOSTS
})

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8")

/**
 * `v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>">`, the value of `X-Slack-Signature` (on the exact bytes).
 *
 * @since 0.2.0
 * @category verification
 */
export const signature = (
  secret: string | Redacted.Redacted<string>,
  timestamp: string,
  body: Uint8Array
): Effect.Effect<string> => {
  const prefix = encoder.encode(`v0:${timestamp}:`)
  const base = new Uint8Array(prefix.length + body.length)
  base.set(prefix, 0)
  base.set(body, prefix.length)
  return Effect.map(hmacSha256Hex(secret, base), (hex) => `v0=${hex}`)
}

/**
 * Why a request's signature does not verify, or `undefined` when it does: `X-Slack-Request-Timestamp` (whole unix
 * seconds) within `TIMESTAMP_WINDOW_SECONDS` of `nowMs`, and `X-Slack-Signature` equal to `signature(…)` in constant
 * time.
 *
 * @since 0.2.0
 * @category verification
 */
export const verify = Effect.fnUntraced(function*(
  secret: Redacted.Redacted<string>,
  request: WebhookRequest,
  nowMs: number
) {
  const given = header(request, "x-slack-signature")
  const timestamp = header(request, "x-slack-request-timestamp")?.trim()
  if (given === undefined) return "missing X-Slack-Signature"
  if (timestamp === undefined || timestamp === "") return "missing X-Slack-Request-Timestamp"
  if (!/^\d{1,15}$/.test(timestamp)) return "X-Slack-Request-Timestamp is not unix seconds"
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > TIMESTAMP_WINDOW_SECONDS) {
    return "X-Slack-Request-Timestamp is more than 5 minutes from now"
  }
  const expected = yield* signature(secret, timestamp, request.body)
  if (!(yield* constantTimeEquals(given.trim().toLowerCase(), expected))) {
    return "X-Slack-Signature does not match the body"
  }
  return undefined
})

/**
 * The one answer to every request that fails verification (the reason is kept for the log line and `explain`).
 *
 * @since 0.2.0
 * @category constants
 */
export const INVALID_SIGNATURE = "the Slack request signature is not valid"

const invalid = (reason: string): RouteOutcome => ({
  ...outcome(NAME, respondError(401, "invalid_signature", INVALID_SIGNATURE), reason)
})

/**
 * The fields of a request body: `commands/` is form-encoded; `action/` and `options-load/` carry one `payload` form
 * field holding JSON; `event/` is JSON. Anything unreadable is `{}`.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parseBody = (route: string, body: Uint8Array): Readonly<Record<string, unknown>> => {
  if (route === "event") return parseJsonObject(body)
  const form = new URLSearchParams(decoder.decode(body))
  if (route === "commands") return Object.fromEntries(form)
  const payload = form.get("payload")
  if (payload === null) return {}
  try {
    const value: unknown = JSON.parse(payload)
    return isRecord(value) ? value : {}
  } catch {
    return {}
  }
}

const nonEmpty = (value: unknown): string | undefined =>
  typeof value === "string" && value.trim() !== "" ? value.trim() : undefined

/**
 * The workspace a request comes from: `team_id`, `team.id`, `user.team_id`, then `authorizations[0].team_id` (org-wide
 * events carry no top-level `team_id`).
 *
 * @since 0.2.0
 * @category parsing
 */
export const teamId = (data: Readonly<Record<string, unknown>>): string | undefined => {
  const authorizations = data.authorizations
  return nonEmpty(data.team_id) ??
    nonEmpty(getPath(data, "team", "id")) ??
    nonEmpty(getPath(data, "user", "team_id")) ??
    (Array.isArray(authorizations) ? nonEmpty(getPath(authorizations[0], "team_id")) : undefined)
}

/**
 * The organization slug of a `link team <slug>` / `unlink team <slug>` command text (keywords in any case), else
 * `undefined`.
 *
 * @since 0.2.0
 * @category parsing
 */
export const teamCommandSlug = (text: unknown): string | undefined => {
  if (typeof text !== "string") return undefined
  const words = text.trim().split(/\s+/)
  if (words.length !== 3) return undefined
  const [verb, noun, slug] = words as [string, string, string]
  const v = verb.toLowerCase()
  return (v === "link" || v === "unlink") && noun.toLowerCase() === "team" ? slug : undefined
}

/**
 * @since 0.2.0
 * @category constants
 */
export const FALLBACK = { status: 200, headers: {}, body: "" } as const

/**
 * @since 0.2.0
 * @category constants
 */
export const OPTIONS_FALLBACK = jsonFallback({ options: [] })

const make_ = (): Provider => {
  const route = Effect.fnUntraced(function*(request: WebhookRequest, match: RouteMatch, ports: Ports) {
    const config = settings(ports.secrets.slack)
    if (Option.isNone(config.signingSecret)) {
      return invalid("no signing secret configured (providers.slack.signingSecret)")
    }
    const failure = yield* verify(config.signingSecret.value, request, yield* Clock.currentTimeMillis)
    if (failure !== undefined) return invalid(failure)

    const data = parseBody(match.route, request.body)
    if (match.route === "event" && data.type === "url_verification") {
      if (typeof data.challenge !== "string") {
        return errorOutcome(NAME, 400, "bad_request", "url_verification without a challenge")
      }
      return outcome(
        NAME,
        respond(200, "url_verification", JSON.stringify({ challenge: data.challenge }), {
          "content-type": "application/json"
        }),
        "url_verification"
      )
    }

    const team = teamId(data)
    if (team === undefined) {
      return errorOutcome(NAME, 400, "missing_identity", "no team id (team_id, team.id, user.team_id, authorizations)")
    }
    const found = yield* activeIntegration(ports, NAME, team)
    if (Option.isNone(found)) {
      return errorOutcome(NAME, 400, "integration_not_found", `no active integration for team ${team}`)
    }
    const integration = found.value
    return yield* decide(
      match.route,
      data,
      integration,
      ports,
      config,
      header(request, "x-slack-retry-num") !== undefined
    )
  })

  return {
    name: NAME,
    routes: ["commands/", "action/", "options-load/", "event/"],
    match: pathMatcher([
      ["commands", /^commands\/$/],
      ["action", /^action\/$/],
      ["options-load", /^options-load\/$/],
      ["event", /^event\/$/]
    ]),
    route
  }
}

const decide = Effect.fnUntraced(function*(
  route: string,
  data: Readonly<Record<string, unknown>>,
  integration: Integration,
  ports: Ports,
  config: Settings,
  retry: boolean
) {
  const resolution = yield* resolveWith(ports.organizations, ports.regions, integration.id)
  // no active organization → 202, nothing stored (as the reference: Slack would retry an error)
  if (resolution.organizations.length === 0) {
    yield* countDropped(NAME, "no_organization")
    return outcome(NAME, respond(202, "dropped:no_organization"), "dropped:no_organization", integration)
  }
  // `link team <slug>` / `unlink team <slug>`: only that organization's region, when it is one of the integration's
  let organizations = resolution.organizations
  let regions = regionNames(resolution)
  const slug = route === "commands" ? teamCommandSlug(data.text) : undefined
  let narrowed: string | undefined
  if (slug !== undefined) {
    const found = (yield* ports.organizations.byIds(resolution.organizations)).find((o) => o.slug === slug)
    if (found !== undefined) {
      narrowed = found.slug
      organizations = [found.id]
      regions = [found.region]
    }
  }

  let event: RouteOutcome["event"]
  let replyTarget: ReplyTarget | null = null
  const responseUrl = route === "commands" || route === "action" ? data.response_url : undefined
  if (typeof responseUrl === "string" && responseUrl !== "") {
    if (replyHostAllowed(responseUrl, config.replyHosts)) {
      replyTarget = { kind: "slack", url: responseUrl }
    } else {
      yield* repliesTotal.update(1, NAME, "refused_host")
      // the host only: the rest of a response_url is a credential
      event = {
        message: "slack.reply_host_refused",
        fields: { reply_host: replyHost(responseUrl) ?? "(not an http(s) URL)" }
      }
    }
  }
  const eventId = route === "event" ? nonEmpty(data.event_id) : undefined
  const options = route === "options-load"
  const decision = hybrid({
    provider: NAME,
    integrationId: integration.id,
    regions,
    mode: route === "action" ? "all" : "first",
    budgetMs: config.syncBudgetMs,
    fallback: options ? OPTIONS_FALLBACK : FALLBACK,
    store: !options,
    replyTarget,
    // the store's dedupe records are shared by every provider: the key says whose
    // (every accepted event is recorded; only a retry — `X-Slack-Retry-Num` — of a recorded one is dropped)
    dedupe: eventId === undefined ? null : {
      key: `${NAME}:${eventId}`,
      ttlMs: DEDUPE_TTL_MS,
      retry
    }
  })
  const result: RouteOutcome = {
    provider: NAME,
    decision,
    reason: `hybrid ${decision.mode}${narrowed === undefined ? "" : ` (team ${narrowed})`}`,
    integration,
    organizations,
    regions,
    ...(event === undefined ? {} : { event })
  }
  return result
})

/**
 * The `slack` provider.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (): Provider => make_()
