/**
 * @cellgate/core — the routing core.
 *
 * @since 0.1.0
 */
export * as Delivery from "./Delivery.js"
export * as DirectoryCache from "./DirectoryCache.js"
export * from "./Domain.js"
export * from "./Errors.js"
export * from "./Forwarding.js"
export * from "./Gateway.js"
export * from "./Ids.js"
export * from "./Json.js"
export * as Metrics from "./Metrics.js"
export * from "./Provider.js"
export * as Bitbucket from "./providers/Bitbucket.js"
export * as GitHub from "./providers/GitHub.js"
export * as GitLab from "./providers/GitLab.js"
export * as Providers from "./providers/index.js"
export * as JiraCloud from "./providers/JiraCloud.js"
export * as JiraServer from "./providers/JiraServer.js"
export { jiraServerToken } from "./providers/JiraServer.js"
export * as MsTeams from "./providers/MsTeams.js"
export * as Vsts from "./providers/Vsts.js"
export * from "./Resolve.js"
export * from "./Services.js"
export * from "./TtlCache.js"
export * as VolumeGates from "./VolumeGate.js"
