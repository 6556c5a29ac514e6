/**
 * Mailbox names: the one spelling every provider uses, `<provider>:<region>:<part>…` (docs/routing.md#other-providers).
 *
 * @since 0.2.0
 */

/**
 * `<provider>:<region>` followed by `:<part>` for each part that is not `undefined` (an absent bucket adds
 * nothing): `name("github", "us", 12, 7)` is `github:us:12:7`, `name("github", "us", 12, undefined)` is
 * `github:us:12`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const name = (
  provider: string,
  region: string,
  ...parts: ReadonlyArray<string | number | undefined>
): string => {
  let out = `${provider}:${region}`
  for (const part of parts) if (part !== undefined) out += `:${part}`
  return out
}

/**
 * A mailbox's tenant, what fair claims share slots by (docs/routing.md#fair-adaptive-delivery): `i:<integration id>`,
 * or `o:<organization id>` for mailboxes keyed by organization (Bitbucket, plugins).
 *
 * @since 0.3.0
 * @category constructors
 */
export const tenant = {
  integration: (id: number): string => `i:${id}`,
  organization: (id: number): string => `o:${id}`
} as const

/**
 * The tenant a store records for a payload's mailbox: the payload's own `tenant` when it has one, else
 * `i:<integration id>`, else (no integration: a custom provider that names none) `m:<mailbox>`, a tenant of its own.
 *
 * @since 0.3.0
 * @category constructors
 */
export const tenantOf = (
  payload: {
    readonly tenant?: string | null | undefined
    readonly integrationId: number | null
    readonly mailbox: string
  }
): string =>
  payload.tenant ??
    (payload.integrationId !== null ? tenant.integration(payload.integrationId) : `m:${payload.mailbox}`)
