/**
 * The directory over any `SqlClient` (SQLite or PostgreSQL): `IntegrationRepo`, `OrgRepo`, `RegionDirectory`,
 * `DirectoryStore` (the import) and the store's shed rules (`ShedRules`, table `shed_rules`; an import leaves them). Reads answer exactly as the memory directory does; a read the store cannot answer
 * (driver failure, a row that does not decode) fails with `StoreUnavailable`. No cache here: `SqlStore.layer`
 * (and so `Sqlite.layer` / `Postgres.layer`) puts `DirectoryCache` in front of it.
 *
 * @since 0.2.0
 */
import type { Directory, IntegrationId, OrganizationId, RegionName } from "@cellgate/core"
import {
  DirectoryStore,
  Integration,
  IntegrationRepo,
  IntegrationStatus,
  Organization,
  OrgRepo,
  Region,
  RegionDirectory,
  ShedRules,
  StoreUnavailable
} from "@cellgate/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { ParseResult } from "effect"
import { Array as Arr, Context, Effect, Layer, Option, Order, Redacted, Schema } from "effect"
import {
  decodeRows,
  Int,
  IntOrNull,
  isPg,
  makeTransaction,
  readErrors,
  SecretOrNone,
  storeErrors,
  WriteHealth
} from "./internal/sql.js"

/**
 * A row of `integrations`.
 *
 * @since 0.2.0
 * @category rows
 */
export const IntegrationRow = Schema.Struct({
  id: Int,
  provider: Schema.String,
  external_id: Schema.String,
  status: IntegrationStatus,
  webhook_secret: SecretOrNone,
  shared_secret: SecretOrNone
})

/**
 * A row of `organizations`.
 *
 * @since 0.2.0
 * @category rows
 */
export const OrganizationRow = Schema.Struct({ id: Int, slug: Schema.String, region: Schema.String })

/**
 * A row of `regions`.
 *
 * @since 0.2.0
 * @category rows
 */
export const RegionRow = Schema.Struct({ name: Schema.String, url: Schema.String, secret: SecretOrNone })

/**
 * The organization of an active row of `organization_integrations`.
 *
 * @since 0.2.0
 * @category rows
 */
export const ActiveLinkRow = Schema.Struct({ organization_id: Int })

/**
 * A row of `shed_rules`.
 *
 * @since 0.2.0
 * @category rows
 */
export const ShedRuleRow = Schema.Struct({ provider: Schema.String, integration_id: IntOrNull })

const KeyRow = Schema.Struct({ key: Schema.String })

const toShedRule = (row: typeof ShedRuleRow.Type): ShedRules.Rule =>
  row.integration_id === null
    ? { provider: row.provider }
    : { provider: row.provider, integrationId: row.integration_id as IntegrationId }

const toIntegration = (row: typeof IntegrationRow.Type): Integration => {
  const metadata: { webhookSecret?: Redacted.Redacted<string>; sharedSecret?: Redacted.Redacted<string> } = {}
  if (Option.isSome(row.webhook_secret)) metadata.webhookSecret = row.webhook_secret.value
  if (Option.isSome(row.shared_secret)) metadata.sharedSecret = row.shared_secret.value
  return new Integration({
    id: row.id as IntegrationId,
    provider: row.provider,
    externalId: row.external_id,
    status: row.status,
    metadata
  }, { disableValidation: true })
}

const toRegion = (row: typeof RegionRow.Type): Region =>
  new Region(
    Option.match(row.secret, {
      onNone: () => ({ name: row.name as RegionName, url: row.url }),
      onSome: (secret) => ({ name: row.name as RegionName, url: row.url, secret })
    }),
    { disableValidation: true }
  )

const toOrganization = (row: typeof OrganizationRow.Type): Organization =>
  new Organization({ id: row.id as OrganizationId, slug: row.slug, region: row.region as RegionName }, {
    disableValidation: true
  })

const byName = Order.mapInput(Order.string, (r: Region) => r.name)

/** Last entry wins for a repeated key, as in the memory store's maps; `seq` is the index of that last entry. */
const lastWins = <A, K>(items: ReadonlyArray<A>, key: (a: A) => K): Array<readonly [A, number]> => {
  const map = new Map<K, readonly [A, number]>()
  items.forEach((item, i) => map.set(key(item), [item, i]))
  return Array.from(map.values())
}

const secretValue = (secret: Redacted.Redacted<string> | undefined) =>
  secret === undefined ? null : Redacted.value(secret)

/**
 * The directory services over one `SqlClient`.
 *
 * @since 0.2.0
 * @category models
 */
export interface SqlDirectory {
  readonly integrations: IntegrationRepo.IntegrationRepo["Type"]
  readonly orgs: OrgRepo.OrgRepo["Type"]
  readonly regions: RegionDirectory.RegionDirectory["Type"]
  readonly store: DirectoryStore.DirectoryStore["Type"]
  readonly shed: ShedRules.ShedRules["Type"]
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<SqlDirectory, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const health = yield* WriteHealth
  const transaction = makeTransaction(sql)

  // the read path (every cache miss of a webhook): fixed SQL texts, no statement compiler
  const pg = isPg(sql)
  const query = <A, I>(text: string, row: Schema.Schema<A, I>) => {
    let n = 0
    const dialectText = pg ? text.replace(/\?/g, () => `$${++n}`) : text
    const decode = decodeRows(row)
    return (params: ReadonlyArray<unknown>) => Effect.flatMap(sql.unsafe(dialectText, params), decode)
  }
  const integrationColumns = "id, provider, external_id, status, webhook_secret, shared_secret"
  const byIdQuery = query(`SELECT ${integrationColumns} FROM integrations WHERE id = ?`, IntegrationRow)
  const byExternalIdQuery = query(
    `SELECT ${integrationColumns} FROM integrations WHERE provider = ? AND external_id = ? ORDER BY seq DESC LIMIT 1`,
    IntegrationRow
  )
  const activeQuery = query(
    `SELECT organization_id FROM organization_integrations WHERE integration_id = ? AND status = 'active' ORDER BY seq`,
    ActiveLinkRow
  )
  const regionQuery = query(`SELECT name, url, secret FROM regions WHERE name = ?`, RegionRow)
  const allRegionsQuery = query(`SELECT name, url, secret FROM regions`, RegionRow)
  type OrgsQuery = (
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<typeof OrganizationRow.Type>, SqlError | ParseResult.ParseError>
  const orgsQueries = new Map<number, OrgsQuery>()
  const orgsQuery = (count: number) => {
    let q: OrgsQuery | undefined = orgsQueries.get(count)
    if (q === undefined) {
      q = query(
        `SELECT id, slug, region FROM organizations WHERE id IN (${Arr.replicate("?", count).join(", ")})`,
        OrganizationRow
      )
      if (orgsQueries.size < 64) orgsQueries.set(count, q)
    }
    return q
  }

  const importDirectory = (directory: Directory) =>
    transaction(Effect.gen(function*() {
      yield* sql`DELETE FROM organization_integrations`
      yield* sql`DELETE FROM integrations`
      yield* sql`DELETE FROM organizations`
      yield* sql`DELETE FROM regions`
      const regions = lastWins(directory.regions, (r) => r.name).map(([r, seq]) => ({
        name: r.name,
        url: r.url,
        secret: secretValue(r.secret),
        seq
      }))
      const organizations = lastWins(directory.organizations, (o) => o.id).map(([o]) => ({
        id: o.id,
        slug: o.slug,
        region: o.region
      }))
      const integrations = lastWins(directory.integrations, (i) => i.id).map(([i, seq]) => ({
        id: i.id,
        provider: i.provider,
        external_id: i.externalId,
        status: i.status,
        webhook_secret: secretValue(i.metadata.webhookSecret),
        shared_secret: secretValue(i.metadata.sharedSecret),
        seq
      }))
      const links = directory.organizationIntegrations.map((l, seq) => ({
        seq,
        organization_id: l.organizationId,
        integration_id: l.integrationId,
        status: l.status
      }))
      for (const rows of Arr.chunksOf(regions, 200)) yield* sql`INSERT INTO regions ${sql.insert(rows)}`
      for (const rows of Arr.chunksOf(organizations, 200)) yield* sql`INSERT INTO organizations ${sql.insert(rows)}`
      for (const rows of Arr.chunksOf(integrations, 200)) yield* sql`INSERT INTO integrations ${sql.insert(rows)}`
      for (const rows of Arr.chunksOf(links, 200)) {
        yield* sql`INSERT INTO organization_integrations ${sql.insert(rows)}`
      }
    })).pipe(storeErrors("importDirectory"), health.trackAppend)

  // shed rules: read every second by each gateway (`ShedRules.layerInForce`), written by `cellgate shed add|remove`
  const shedListQuery = query(`SELECT provider, integration_id FROM shed_rules`, ShedRuleRow)
  const shedAddQuery = query(
    `INSERT INTO shed_rules (key, provider, integration_id) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key`,
    KeyRow
  )
  const shedRemoveQuery = query(`DELETE FROM shed_rules WHERE key = ? RETURNING key`, KeyRow)
  const writeErrors = (operation: string) => <A>(self: Effect.Effect<A, SqlError | ParseResult.ParseError>) =>
    Effect.mapError(self, (cause) => new StoreUnavailable({ operation, cause }))
  const shed = ShedRules.ShedRules.of({
    list: shedListQuery([]).pipe(
      Effect.map((rows) => ShedRules.sort(rows.map(toShedRule))),
      readErrors("ShedRules.list")
    ),
    add: (rule) =>
      shedAddQuery([ShedRules.key(rule), rule.provider, rule.integrationId ?? null]).pipe(
        Effect.map((rows) => rows.length > 0),
        writeErrors("ShedRules.add")
      ),
    remove: (rule) =>
      shedRemoveQuery([ShedRules.key(rule)]).pipe(
        Effect.map((rows) => rows.length > 0),
        writeErrors("ShedRules.remove")
      )
  })

  const first = <A, B>(f: (a: A) => B) => (rows: ReadonlyArray<A>) => Option.map(Arr.head(rows), f)

  const integrations = IntegrationRepo.IntegrationRepo.of({
    byId: (id) => byIdQuery([id]).pipe(Effect.map(first(toIntegration)), readErrors("IntegrationRepo.byId")),
    byExternalId: (provider, externalId) =>
      byExternalIdQuery([provider, externalId]).pipe(
        Effect.map(first(toIntegration)),
        readErrors("IntegrationRepo.byExternalId")
      )
  })

  const orgs = OrgRepo.OrgRepo.of({
    activeOrganizationIds: (integrationId) =>
      activeQuery([integrationId]).pipe(
        Effect.map(Arr.map((row) => row.organization_id as OrganizationId)),
        readErrors("OrgRepo.activeOrganizationIds")
      ),
    byIds: (ids) =>
      ids.length === 0
        ? Effect.succeed([])
        : Effect.forEach(Arr.chunksOf(Array.from(new Set(ids)), 500), (chunk) => orgsQuery(chunk.length)(chunk)).pipe(
          Effect.map((results) => {
            const found = new Map<number, Organization>()
            for (const rows of results) {
              for (const row of rows) found.set(row.id, toOrganization(row))
            }
            return Arr.filterMap(ids, (id) => Option.fromNullable(found.get(id)))
          }),
          readErrors("OrgRepo.byIds")
        )
  })

  const regions = RegionDirectory.RegionDirectory.of({
    byName: (name) => regionQuery([name]).pipe(Effect.map(first(toRegion)), readErrors("RegionDirectory.byName")),
    all: allRegionsQuery([]).pipe(
      Effect.map((rows) => Arr.sort(Arr.map(rows, toRegion), byName)),
      readErrors("RegionDirectory.all")
    )
  })

  return { integrations, orgs, regions, store: DirectoryStore.DirectoryStore.of({ importDirectory }), shed }
})

/**
 * The directory's context: `IntegrationRepo`, `OrgRepo`, `RegionDirectory`, `DirectoryStore`, `ShedRules`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const toContext = (
  directory: SqlDirectory
): Context.Context<
  | IntegrationRepo.IntegrationRepo
  | OrgRepo.OrgRepo
  | RegionDirectory.RegionDirectory
  | DirectoryStore.DirectoryStore
  | ShedRules.ShedRules
> =>
  Context.make(IntegrationRepo.IntegrationRepo, directory.integrations).pipe(
    Context.add(OrgRepo.OrgRepo, directory.orgs),
    Context.add(RegionDirectory.RegionDirectory, directory.regions),
    Context.add(DirectoryStore.DirectoryStore, directory.store),
    Context.add(ShedRules.ShedRules, directory.shed)
  )

/**
 * The directory over the `SqlClient` in context (migrations must have run), without a cache.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<
  | IntegrationRepo.IntegrationRepo
  | OrgRepo.OrgRepo
  | RegionDirectory.RegionDirectory
  | DirectoryStore.DirectoryStore
  | ShedRules.ShedRules,
  never,
  SqlClient.SqlClient
> = Layer.effectContext(Effect.map(make, toContext))
