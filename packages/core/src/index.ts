/**
 * @cellgate/core — the routing core.
 *
 * @since 0.1.0
 */
export * from "./Domain.js"
export * from "./Errors.js"
export * from "./Forwarding.js"
export * from "./Gateway.js"
export * from "./Ids.js"
export * from "./Json.js"
export * as Metrics from "./Metrics.js"
export * from "./Provider.js"
export * as Providers from "./providers/index.js"
export * as JiraServer from "./providers/JiraServer.js"
export { jiraServerToken } from "./providers/JiraServer.js"
export * from "./Resolve.js"
export * from "./Services.js"
export * from "./TtlCache.js"
