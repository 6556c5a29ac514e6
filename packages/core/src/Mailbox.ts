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
