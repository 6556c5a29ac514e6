// Directory builders and arbitraries shared by the tests.
import { Directory } from "@cellgate/core"
import { FastCheck as fc, Schema } from "effect"

/** Decodes a directory written the way the configuration file writes it (plain JSON, secrets as strings). */
export const directory = (json: unknown): Directory => Schema.decodeUnknownSync(Directory)(json)

/** The JSON of a generated directory: small id spaces so links collide, dangle and repeat. */
export interface DirectoryJson {
  readonly regions: ReadonlyArray<{ name: string; url: string }>
  readonly organizations: ReadonlyArray<{ id: number; slug: string; region: string }>
  readonly integrations: ReadonlyArray<{ id: number; provider: string; externalId: string; status: string }>
  readonly organizationIntegrations: ReadonlyArray<{ organizationId: number; integrationId: number; status: string }>
}

const regionNames = ["ap", "de", "eu", "us", "us2"] as const
const status = fc.constantFrom("active", "active", "active", "disabled", "pending_deletion")

const uniqueBy = <A>(items: ReadonlyArray<A>, key: (a: A) => unknown) => {
  const seen = new Set<unknown>()
  return items.filter((a) => (seen.has(key(a)) ? false : (seen.add(key(a)), true)))
}

/** A generated directory; `knownRegionsOnly` keeps every organization's region in the directory. */
export const directoryJson = (knownRegionsOnly: boolean): fc.Arbitrary<DirectoryJson> =>
  fc.record({
    regions: fc.subarray([...regionNames], { minLength: 1 }),
    orgs: fc.array(fc.record({ id: fc.integer({ min: 1, max: 12 }), region: fc.constantFrom(...regionNames) }), {
      maxLength: 12
    }),
    integrations: fc.array(fc.record({ id: fc.integer({ min: 1, max: 4 }), status }), { minLength: 1, maxLength: 4 }),
    links: fc.array(
      fc.record({
        organizationId: fc.integer({ min: 1, max: 14 }),
        integrationId: fc.integer({ min: 1, max: 4 }),
        status
      }),
      { maxLength: 30 }
    )
  }).map(({ integrations, links, orgs, regions }) => ({
    regions: regions.map((name) => ({ name, url: `http://${name}.example.test` })),
    organizations: uniqueBy(orgs, (o) => o.id)
      .filter((o) => !knownRegionsOnly || regions.includes(o.region))
      .map((o) => ({ id: o.id, slug: `org-${o.id}`, region: o.region })),
    integrations: uniqueBy(integrations, (i) => i.id).map((i) => ({
      id: i.id,
      provider: "jira_server",
      externalId: `ext-${i.id}`,
      status: i.status
    })),
    organizationIntegrations: uniqueBy(links, (l) => `${l.organizationId}:${l.integrationId}`)
  }))

/** The same directory with every table's rows in another order. */
export const shuffled = (d: DirectoryJson, seed: number): DirectoryJson => {
  let s = seed >>> 0
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0)
  const shuffle = <A>(xs: ReadonlyArray<A>) => {
    const out = xs.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = next() % (i + 1)
      ;[out[i], out[j]] = [out[j]!, out[i]!]
    }
    return out
  }
  return {
    regions: shuffle(d.regions),
    organizations: shuffle(d.organizations),
    integrations: shuffle(d.integrations),
    organizationIntegrations: shuffle(d.organizationIntegrations)
  }
}

/** What docs/routing.md#resolution says `resolveRegions` returns, computed independently from the JSON. */
export const expectedResolution = (d: DirectoryJson, integrationId: number) => {
  const orgs = new Map(d.organizations.map((o) => [o.id, o]))
  const orgIds = [
    ...new Set(
      d.organizationIntegrations
        .filter((l) => l.integrationId === integrationId && l.status === "active" && orgs.has(l.organizationId))
        .map((l) => l.organizationId)
    )
  ].sort((a, b) => a - b)
  const names = [...new Set(orgIds.map((id) => orgs.get(id)!.region))].sort()
  const known = new Set(d.regions.map((r) => r.name))
  const missing = names.find((n) => !known.has(n))
  return { organizations: orgIds, regions: names, missing }
}
