/**
 * @cellgate/core — the routing core: the gateway as a service over its ports, the providers, resolution, delivery.
 *
 * Modules are exported as namespaces (`Gateway.layer`, `IntegrationRepo.IntegrationRepo`, `Outbox.layerMemory`);
 * the domain (`Domain`, `Errors`, `Ids`), the wire helpers (`Forwarding`, `Json`, `Responses`) and resolution
 * (`resolveRegions`) are exported flat.
 *
 * @since 0.1.0
 */
export * as ControlHandler from "./ControlHandler.js"
export * as Delivery from "./Delivery.js"
export * as DeliveryPolicy from "./DeliveryPolicy.js"
export * as DeliverySettings from "./DeliverySettings.js"
export * as DirectoryCache from "./DirectoryCache.js"
export * as DirectoryStore from "./DirectoryStore.js"
export * from "./Domain.js"
export * from "./Errors.js"
export * from "./Forwarding.js"
export * as Gateway from "./Gateway.js"
export * as GatewaySettings from "./GatewaySettings.js"
export * as IdGenerator from "./IdGenerator.js"
export * from "./Ids.js"
export * as IntegrationRepo from "./IntegrationRepo.js"
export * from "./Json.js"
export * as Mailbox from "./Mailbox.js"
export * as Metrics from "./Metrics.js"
export * as OrgRepo from "./OrgRepo.js"
export * as Outbox from "./Outbox.js"
export * as Provider from "./Provider.js"
export * as ProviderRegistry from "./ProviderRegistry.js"
export * as Bitbucket from "./providers/Bitbucket.js"
export * as GitHub from "./providers/GitHub.js"
export * as GitLab from "./providers/GitLab.js"
export * as Providers from "./providers/index.js"
export * as JiraCloud from "./providers/JiraCloud.js"
export * as JiraServer from "./providers/JiraServer.js"
export { jiraServerToken } from "./providers/JiraServer.js"
export * as MsTeams from "./providers/MsTeams.js"
export * as Vsts from "./providers/Vsts.js"
export * as Redaction from "./Redaction.js"
export * as RegionClient from "./RegionClient.js"
export * as RegionDirectory from "./RegionDirectory.js"
export * from "./Resolve.js"
export * from "./Responses.js"
export * as StoreHealth from "./StoreHealth.js"
export type { StoreServices } from "./StoreHealth.js"
export * as StoreOutage from "./StoreOutage.js"
export * from "./TtlCache.js"
export * as VolumeGate from "./VolumeGate.js"
