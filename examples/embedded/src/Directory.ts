/**
 * cellgate's directory ports over the application's own customers: the application implements `IntegrationRepo`,
 * `OrgRepo` and `RegionDirectory` (cellgate never owns this data). Here one customer is one organization, and a
 * customer's Jira Server connection is one integration (same id) linked to it.
 */
import type { IntegrationId, OrganizationId, RegionName } from "@cellgate/core"
import { Integration, IntegrationRepo, Organization, OrgRepo, Region, RegionDirectory } from "@cellgate/core"
import { Array as Arr, Effect, Layer, Option, Order } from "effect"
import type { Customer } from "./Customers.js"
import { Customers } from "./Customers.js"

const toIntegration = (customer: Customer): Option.Option<Integration> =>
  customer.jiraServer === undefined
    ? Option.none()
    : Option.some(Integration.make({
      id: customer.id as IntegrationId,
      provider: "jira_server",
      externalId: customer.jiraServer.serverId,
      status: "active",
      metadata: { webhookSecret: customer.jiraServer.webhookSecret }
    }))

const toOrganization = (customer: Customer): Organization =>
  Organization.make({ id: customer.id as OrganizationId, slug: customer.slug, region: customer.region as RegionName })

/** `IntegrationRepo`: the customers' Jira Server connections. */
export const integrationRepoLayer: Layer.Layer<IntegrationRepo.IntegrationRepo, never, Customers> = Layer.effect(
  IntegrationRepo.IntegrationRepo,
  Effect.map(Customers, (customers) =>
    IntegrationRepo.IntegrationRepo.of({
      byId: (id) =>
        Effect.map(customers.all, (all) => Arr.findFirst(all, (c) => c.id === id).pipe(Option.flatMap(toIntegration))),
      byExternalId: (provider, externalId) =>
        Effect.map(customers.all, (all) =>
          provider !== "jira_server"
            ? Option.none()
            : Arr.findFirst(all, (c) => c.jiraServer?.serverId === externalId).pipe(Option.flatMap(toIntegration)))
    }))
)

/** `OrgRepo`: a customer is linked to its own connection. */
export const orgRepoLayer: Layer.Layer<OrgRepo.OrgRepo, never, Customers> = Layer.effect(
  OrgRepo.OrgRepo,
  Effect.map(Customers, (customers) =>
    OrgRepo.OrgRepo.of({
      activeOrganizationIds: (integrationId) =>
        Effect.map(customers.all, (all) =>
          all.filter((c) =>
            c.id === integrationId && c.jiraServer !== undefined
          ).map((c) => c.id as OrganizationId)),
      byIds: (ids) =>
        Effect.map(customers.all, (all) => all.filter((c) => ids.includes(c.id as OrganizationId)).map(toOrganization))
    }))
)

const byName = Order.mapInput(Order.string, (r: Region) => r.name)

/** `RegionDirectory`: the application's regions. */
export const regionDirectoryLayer: Layer.Layer<RegionDirectory.RegionDirectory, never, Customers> = Layer.effect(
  RegionDirectory.RegionDirectory,
  Effect.map(Customers, (customers) => {
    const all = Effect.map(
      customers.regions,
      (regions) => Arr.sort(regions.map((r) => Region.make({ name: r.name as RegionName, url: r.url })), byName)
    )
    return RegionDirectory.RegionDirectory.of({
      all,
      byName: (name) => Effect.map(all, Arr.findFirst((r) => r.name === name))
    })
  })
)

/** The three directory ports over `Customers`. */
export const layer: Layer.Layer<
  IntegrationRepo.IntegrationRepo | OrgRepo.OrgRepo | RegionDirectory.RegionDirectory,
  never,
  Customers
> = Layer.mergeAll(integrationRepoLayer, orgRepoLayer, regionDirectoryLayer)
