/**
 * What the providers of docs/routing.md#other-providers share: constant-time secret checks on raw bytes, active-integration lookup,
 * the "routes unverified" warning, and resolution to an `Enqueue` with one target per region.
 *
 * @since 0.1.0
 */
import { Effect, Encoding, Option, Redacted } from "effect"
import type { Integration, Organization, RouteDecision, RouteOutcome, WebhookRequest } from "../Domain.js"
import { control, Enqueue, respondError } from "../Domain.js"
import type { StoreUnavailable } from "../Errors.js"
import type { IntegrationId } from "../Ids.js"
import * as Mailbox from "../Mailbox.js"
import type { Ports } from "../Provider.js"
import type { Resolution } from "../Resolve.js"
import { regionNames, resolveWith } from "../Resolve.js"

const encoder = new TextEncoder()

const toHex = (buffer: ArrayBuffer): string => Encoding.encodeHex(new Uint8Array(buffer))

/**
 * Lower-case hex HMAC-SHA256 of the exact bytes `data` with `secret`. An empty secret is a valid HMAC key (padded
 * with zeros, it is the one-zero-byte key), which WebCrypto refuses to import: it is given as that byte.
 *
 * @since 0.1.0
 * @category verification
 */
export const hmacSha256Hex = (secret: string | Redacted.Redacted<string>, data: Uint8Array): Effect.Effect<string> =>
  Effect.promise(async () => {
    const raw = encoder.encode(typeof secret === "string" ? secret : Redacted.value(secret))
    const key = await crypto.subtle.importKey(
      "raw",
      raw.length === 0 ? new Uint8Array(1) : raw,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"]
    )
    return toHex(await crypto.subtle.sign("HMAC", key, data))
  })

/**
 * Lower-case hex SHA-256 of the UTF-8 bytes of `text`.
 *
 * @since 0.1.0
 * @category verification
 */
export const sha256Hex = (text: string): Effect.Effect<string> =>
  Effect.promise(async () => toHex(await crypto.subtle.digest("SHA-256", encoder.encode(text))))

const digest = (text: string): Promise<Uint8Array> =>
  crypto.subtle.digest("SHA-256", encoder.encode(text)).then((buffer) => new Uint8Array(buffer))

/**
 * Equality of two secrets (or signatures) in constant time: their SHA-256 digests are compared, 32 bytes every
 * time, so neither a length difference nor the first differing character shows in the time taken.
 *
 * @since 0.2.0
 * @category verification
 */
export const constantTimeEquals = (a: string, b: string): Effect.Effect<boolean> =>
  Effect.promise(async () => {
    const [x, y] = await Promise.all([digest(a), digest(b)])
    let diff = 0
    for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!
    return diff === 0
  })

/**
 * A secret sent in a header compared, in constant time (`constantTimeEquals`), with the configured one. A missing
 * header never matches.
 *
 * @since 0.1.0
 * @category verification
 */
export const secretMatches = (given: string | undefined, expected: Redacted.Redacted<string>): Effect.Effect<boolean> =>
  given === undefined ? Effect.succeed(false) : constantTimeEquals(given, Redacted.value(expected))

/**
 * The integration of `provider` with that external id, when it exists and is `active` (any other status is "not
 * found", docs/routing.md#directory-model).
 *
 * @since 0.1.0
 * @category resolution
 */
export const activeIntegration = (
  ports: Ports,
  provider: string,
  externalId: string
): Effect.Effect<Option.Option<Integration>, StoreUnavailable> =>
  Effect.map(
    ports.integrations.byExternalId(provider, externalId),
    Option.filter((i) => i.status === "active" && i.provider === provider)
  )

/**
 * `Ports["warnUnverified"]`: logs, once per provider for the life of the returned function (the gateway makes one
 * when its layer is built), that a provider routes without verification because no secret is configured.
 *
 * @since 0.2.0
 * @category verification
 */
export const makeWarnUnverified = (): (provider: string, key: string) => Effect.Effect<void> => {
  const warned = new Set<string>()
  return (provider, key) =>
    Effect.suspend(() => {
      if (warned.has(provider)) return Effect.void
      warned.add(provider)
      return Effect.logWarning("provider routes unverified: no secret configured").pipe(
        // `key`, not `secret`: a field named `secret` is blanked by the log redactor
        Effect.annotateLogs({ provider, key })
      )
    })
}

/**
 * An outcome made before any integration was found.
 *
 * @since 0.1.0
 * @category constructors
 */
export const outcome = (
  provider: string,
  decision: RouteDecision,
  reason: string,
  integration: Integration | null = null
): RouteOutcome => ({ provider, decision, reason, integration, organizations: [], regions: [] })

/**
 * `Control`, with why.
 *
 * @since 0.1.0
 * @category constructors
 */
export const controlOutcome = (provider: string, reason: string): RouteOutcome => outcome(provider, control, reason)

/**
 * An error answer `{"error","message"}`; the outcome's reason is the message.
 *
 * @since 0.1.0
 * @category constructors
 */
export const errorOutcome = (
  provider: string,
  status: number,
  error: string,
  message: string,
  integration: Integration | null = null
): RouteOutcome => outcome(provider, respondError(status, error, message), message, integration)

/**
 * The integration resolved to its organizations and regions (sorted, unique), or the 400 answer when it has no
 * active organization.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolveIntegration = Effect.fnUntraced(function*(
  ports: Ports,
  provider: string,
  integration: Integration
) {
  const resolution = yield* resolveWith(ports.organizations, ports.regions, integration.id)
  const base = {
    provider,
    integration,
    organizations: resolution.organizations,
    regions: regionNames(resolution)
  }
  if (resolution.organizations.length === 0) {
    const message = "the integration has no active organization"
    return {
      _tag: "Left" as const,
      outcome: { ...base, decision: respondError(400, "no_active_organization", message), reason: message }
    }
  }
  return { _tag: "Right" as const, base, resolution }
})

/**
 * `Enqueue` with one target per region of the resolution, the mailbox named by `mailbox(region)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const enqueueTo = (
  provider: string,
  integrationId: IntegrationId | undefined,
  resolution: Resolution,
  mailbox: (region: string) => string
): Enqueue =>
  new Enqueue({
    provider,
    ...(integrationId === undefined ? {} : { integrationId }),
    targets: resolution.regions.map((r) => ({ region: r.name, mailbox: mailbox(r.name) }))
  }, { disableValidation: true })

/**
 * The outcome of an integration that resolved to organizations: `Enqueue` to each region, the mailbox named by
 * `mailbox(region)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const enqueueOutcome = (
  provider: string,
  integration: Integration,
  resolved: { readonly base: Omit<RouteOutcome, "decision" | "reason">; readonly resolution: Resolution },
  mailbox: (region: string) => string
): RouteOutcome => ({
  ...resolved.base,
  decision: enqueueTo(provider, integration.id, resolved.resolution, mailbox),
  reason: "enqueue"
})

/**
 * The payload of a provider keyed by organization (Bitbucket, plugin paths) goes to the organization's region: one
 * target, mailbox `<provider>:<region>:<org id>`, the organization its tenant (docs/routing.md#fair-adaptive-delivery),
 * no integration id. `Control` when the region is not in the directory.
 *
 * @since 0.3.0
 * @category constructors
 */
export const organizationOutcome = Effect.fnUntraced(function*(provider: string, org: Organization, ports: Ports) {
  const region = yield* ports.regions.byName(org.region)
  if (Option.isNone(region)) return controlOutcome(provider, "the organization's region is not in the directory")
  const name = region.value.name
  const outcome: RouteOutcome = {
    provider,
    decision: new Enqueue({
      provider,
      targets: [{
        region: name,
        mailbox: Mailbox.name(provider, name, org.id),
        tenant: Mailbox.tenant.organization(org.id)
      }]
    }, { disableValidation: true }),
    reason: "enqueue",
    integration: null,
    organizations: [org.id],
    regions: [name]
  }
  return outcome
})

/**
 * A header of the request (headers are lower-cased).
 *
 * @since 0.1.0
 * @category utils
 */
export const header = (request: WebhookRequest, name: string): string | undefined => request.headers[name]

/**
 * An id that is a safe integer or a non-empty string of digits, as text; `undefined` for anything else.
 *
 * @since 0.1.0
 * @category utils
 */
export const idText = (value: unknown): string | undefined => {
  if (typeof value === "number") return Number.isSafeInteger(value) ? String(value) : undefined
  if (typeof value === "string" && /^\d+$/.test(value)) return value
  return undefined
}
