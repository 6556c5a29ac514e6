/**
 * Discord: `/extensions/discord/interactions/` (docs/routing.md#discord, docs/routing.md#deadline-aware-hybrid).
 *
 * Every interaction is verified before its body is read: `X-Signature-Ed25519` (hex) must be the Ed25519 signature of
 * `<X-Signature-Timestamp><raw body>` under `providers.discord.publicKey` (hex), checked with WebCrypto (core stays
 * free of Node). Missing, malformed or wrong → 401 with an empty body, as Discord expects; without a public key every
 * interaction answers 401. A PING (`type` 1) is answered `{"type":1}` at the edge. Application commands (`type` 2) go
 * to the first region, message components (`type` 3) to all, as a `Hybrid` whose stored copy is replied to with the
 * interaction's follow-up `PATCH` (`<apiBaseUrl>/webhooks/<application_id>/<token>/messages/@original`).
 *
 * @since 0.2.0
 */
import { Effect, Either, Encoding, Option, Redacted } from "effect"
import type { ReplyTarget, RouteOutcome, WebhookRequest } from "../Domain.js"
import { respond } from "../Domain.js"
import { parseJsonObject } from "../Json.js"
import { repliesTotal } from "../Metrics.js"
import type { DiscordOptions, Ports, Provider } from "../Provider.js"
import { pathMatcher } from "../Provider.js"
import {
  activeIntegration,
  controlOutcome,
  errorOutcome,
  header,
  idText,
  outcome,
  resolveIntegration
} from "./Common.js"
import { DEFAULT_SYNC_BUDGET_MS, hybrid, jsonFallback, replyHost, replyHostAllowed } from "./Interactive.js"

/**
 * @since 0.2.0
 * @category constants
 */
export const NAME = "discord"

/**
 * `providers.discord.apiBaseUrl` when the configuration does not say.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_API_BASE_URL = "https://discord.com/api/v10"

/**
 * `providers.discord` with its defaults.
 *
 * @since 0.2.0
 * @category models
 */
export interface Settings {
  readonly publicKey: Option.Option<string>
  readonly syncBudgetMs: number
  readonly apiBaseUrl: string
  /** Default: the hostname of `apiBaseUrl`. */
  readonly replyHosts: ReadonlyArray<string>
}

/**
 * `providers.discord` (`ProviderSecrets.discord`) with the defaults of docs/interfaces.md filled in.
 *
 * @since 0.2.0
 * @category models
 */
export const settings = (options: DiscordOptions | undefined): Settings => {
  const apiBaseUrl = (options?.apiBaseUrl ?? DEFAULT_API_BASE_URL).replace(/\/+$/, "")
  const host = replyHost(apiBaseUrl)
  return {
    publicKey: Option.fromNullable(options?.publicKey),
    syncBudgetMs: options?.syncBudgetMs ?? DEFAULT_SYNC_BUDGET_MS,
    apiBaseUrl,
    replyHosts: options?.replyHosts ?? (host === undefined ? [] : [host])
  }
}

const encoder = new TextEncoder()

const hexBytes = (hex: string, length: number): Uint8Array | undefined => {
  if (hex.length !== length * 2) return undefined
  return Either.getOrUndefined(Encoding.decodeHex(hex))
}

/**
 * Whether `signatureHex` is the Ed25519 signature of `timestamp + body` under `publicKeyHex` (32 bytes, hex). A
 * malformed key or signature never verifies.
 *
 * @since 0.2.0
 * @category verification
 */
export const verifySignature = (
  publicKeyHex: string,
  signatureHex: string,
  timestamp: string,
  body: Uint8Array
): Effect.Effect<boolean> => {
  const key = hexBytes(publicKeyHex.trim(), 32)
  const signature = hexBytes(signatureHex.trim(), 64)
  if (key === undefined || signature === undefined) return Effect.succeed(false)
  const prefix = encoder.encode(timestamp)
  const message = new Uint8Array(prefix.length + body.length)
  message.set(prefix, 0)
  message.set(body, prefix.length)
  return Effect.tryPromise(async () => {
    const cryptoKey = await crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"])
    return crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, signature, message)
  }).pipe(Effect.orElseSucceed(() => false))
}

/**
 * The deferred, ephemeral answer Discord gets when the regions do not answer within the budget.
 *
 * @since 0.2.0
 * @category constants
 */
export const FALLBACK = jsonFallback({ type: 5, data: { flags: 64 } })

/** 401 with an empty body, as Discord expects; the reason is for the log line and `explain`. */
const unauthorized = (reason: string): RouteOutcome => outcome(NAME, respond(401, "invalid_signature"), reason)

const snowflake = /^\d{1,20}$/
// an interaction token goes into a URL path: nothing that could change the path or the query
const token = /^[A-Za-z0-9._~+=-]+$/

const route = Effect.fnUntraced(function*(request: WebhookRequest, ports: Ports) {
  const config = settings(ports.secrets.discord)
  if (Option.isNone(config.publicKey)) return unauthorized("no public key configured (providers.discord.publicKey)")
  const given = header(request, "x-signature-ed25519")
  const timestamp = header(request, "x-signature-timestamp")
  if (given === undefined) return unauthorized("missing X-Signature-Ed25519")
  if (timestamp === undefined) return unauthorized("missing X-Signature-Timestamp")
  if (!(yield* verifySignature(config.publicKey.value, given, timestamp, request.body))) {
    return unauthorized("X-Signature-Ed25519 does not verify")
  }

  const data = parseJsonObject(request.body)
  const type = data.type
  if (type === 1) {
    return outcome(
      NAME,
      respond(200, "ping", JSON.stringify({ type: 1 }), { "content-type": "application/json" }),
      "ping"
    )
  }
  if (type !== 2 && type !== 3) return controlOutcome(NAME, `interaction type ${JSON.stringify(type) ?? "missing"}`)

  const guild = idText(data.guild_id)
  if (guild === undefined) return errorOutcome(NAME, 400, "missing_identity", "the interaction has no guild_id")
  const found = yield* activeIntegration(ports, NAME, guild)
  if (Option.isNone(found)) {
    return errorOutcome(NAME, 400, "integration_not_found", `no active integration for guild ${guild}`)
  }
  const integration = found.value
  const resolved = yield* resolveIntegration(ports, NAME, integration)
  if (resolved._tag === "Left") return resolved.outcome

  let replyTarget: ReplyTarget | null = null
  let event: RouteOutcome["event"]
  const applicationId = idText(data.application_id)
  const interactionToken = data.token
  if (
    applicationId !== undefined && snowflake.test(applicationId) &&
    typeof interactionToken === "string" && token.test(interactionToken)
  ) {
    if (replyHostAllowed(config.apiBaseUrl, config.replyHosts)) {
      replyTarget = {
        kind: "discord",
        applicationId,
        token: Redacted.make(interactionToken),
        apiBaseUrl: config.apiBaseUrl
      }
    } else {
      yield* repliesTotal.update(1, NAME, "refused_host")
      event = {
        message: "discord.reply_host_refused",
        fields: { reply_host: replyHost(config.apiBaseUrl) ?? "(not an http(s) URL)" }
      }
    }
  }
  const decision = hybrid({
    provider: NAME,
    integrationId: integration.id,
    regions: resolved.base.regions,
    mode: type === 2 ? "first" : "all",
    budgetMs: config.syncBudgetMs,
    fallback: FALLBACK,
    store: true,
    replyTarget,
    dedupe: null
  })
  const result: RouteOutcome = {
    ...resolved.base,
    decision,
    reason: `hybrid ${decision.mode}`,
    ...(event === undefined ? {} : { event })
  }
  return result
})

/**
 * The `discord` provider.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (): Provider => ({
  name: NAME,
  routes: ["interactions/"],
  match: pathMatcher([["interactions", /^interactions\/$/]]),
  route: (request, _match, ports) => route(request, ports)
})
