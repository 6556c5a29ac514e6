/**
 * @cellgate/adapters — layers for the core services.
 *
 * @since 0.1.0
 */
export * as Memory from "./Memory.js"
