/**
 * Branded identifiers of the directory.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export const IntegrationId = Schema.Int.pipe(Schema.positive(), Schema.brand("IntegrationId"))
/**
 * @since 0.1.0
 * @category models
 */
export type IntegrationId = typeof IntegrationId.Type

/**
 * @since 0.1.0
 * @category models
 */
export const OrganizationId = Schema.Int.pipe(Schema.positive(), Schema.brand("OrganizationId"))
/**
 * @since 0.1.0
 * @category models
 */
export type OrganizationId = typeof OrganizationId.Type

const regionNameRe = /^[a-z0-9][a-z0-9_.-]{0,62}$/

/**
 * A region's name (`us`, `eu`, `de-1`…). Lower-case letters, digits, `-`, `_`, `.`; no `:` so that it can stand
 * inside a mailbox name.
 *
 * @since 0.1.0
 * @category models
 */
export const RegionName = Schema.String.pipe(
  Schema.filter((s) => regionNameRe.test(s), {
    message: () => "a region name is lower-case letters, digits, '-', '_' or '.' (at most 63)",
    arbitrary: () => (fc) => fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/)
  }),
  Schema.brand("RegionName")
)
/**
 * @since 0.1.0
 * @category models
 */
export type RegionName = typeof RegionName.Type
