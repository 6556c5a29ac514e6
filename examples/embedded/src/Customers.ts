/**
 * The application's own data: its customers, each hosted in one region and perhaps connected to a Jira Server. A
 * real application reads these from its database; this one keeps them in memory.
 */
import { Context, Effect, Layer, Redacted, Ref } from "effect"

/** A customer of the application, hosted in one region. */
export interface Customer {
  readonly id: number
  readonly slug: string
  readonly region: string
  /** The customer's Jira Server connection: its server id and the webhook secret the two sides agreed on. */
  readonly jiraServer?: { readonly serverId: string; readonly webhookSecret: Redacted.Redacted<string> } | undefined
}

/** Where the application's regions live (each runs its own copy of the product). */
export interface HostedRegion {
  readonly name: string
  readonly url: string
}

/** The application's customer store. */
export class Customers extends Context.Tag("example/Customers")<Customers, {
  readonly all: Effect.Effect<ReadonlyArray<Customer>>
  readonly regions: Effect.Effect<ReadonlyArray<HostedRegion>>
  readonly add: (customer: Customer) => Effect.Effect<void>
}>() {}

/** Customers in memory, starting with `initial`. */
export const layerMemory = (
  initial: { readonly customers: ReadonlyArray<Customer>; readonly regions: ReadonlyArray<HostedRegion> }
): Layer.Layer<Customers> =>
  Layer.effect(
    Customers,
    Effect.map(Ref.make(initial.customers), (customers) =>
      Customers.of({
        all: Ref.get(customers),
        regions: Effect.succeed(initial.regions),
        add: (customer) => Ref.update(customers, (all) => [...all.filter((c) => c.id !== customer.id), customer])
      }))
  )

/** A small sample: two regions, three customers, two of them on Jira Server. */
export const sample = {
  regions: [
    { name: "eu", url: "http://127.0.0.1:4101" },
    { name: "us", url: "http://127.0.0.1:4102" }
  ],
  customers: [
    {
      id: 1,
      slug: "acme",
      region: "us",
      jiraServer: { serverId: "jira-acme", webhookSecret: Redacted.make("acme-s3cret") }
    },
    {
      id: 2,
      slug: "globex",
      region: "eu",
      jiraServer: { serverId: "jira-globex", webhookSecret: Redacted.make("globex-s3cret") }
    },
    { id: 3, slug: "initech", region: "eu" }
  ]
} satisfies { readonly customers: ReadonlyArray<Customer>; readonly regions: ReadonlyArray<HostedRegion> }
