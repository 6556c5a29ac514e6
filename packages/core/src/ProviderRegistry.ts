/**
 * The provider registry port: the providers cellgate knows, by name. `Providers.layer()` gives the built-in ones.
 *
 * @since 0.2.0
 */
import { Context, Layer } from "effect"
import type { Provider, Registry } from "./Provider.js"

/**
 * The providers cellgate knows, by name.
 *
 * @since 0.1.0
 * @category tags
 */
export class ProviderRegistry extends Context.Tag("@cellgate/core/ProviderRegistry")<ProviderRegistry, Registry>() {}

/**
 * A registry of `providers` (a later provider of the same name wins).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (providers: ReadonlyArray<Provider>): ProviderRegistry["Type"] => {
  const byName = new Map(providers.map((p) => [p.name, p] as const))
  return ProviderRegistry.of({ get: (name) => byName.get(name), all: providers })
}

/**
 * `make(providers)` as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (providers: ReadonlyArray<Provider>): Layer.Layer<ProviderRegistry> =>
  Layer.sync(ProviderRegistry, () => make(providers))
