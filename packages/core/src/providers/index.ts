/**
 * The built-in providers. Adding a provider: a module in this folder, and an entry below.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { Provider } from "../Provider.js"
import * as ProviderRegistry from "../ProviderRegistry.js"
import * as Bitbucket from "./Bitbucket.js"
import * as Discord from "./Discord.js"
import * as GitHub from "./GitHub.js"
import * as GitLab from "./GitLab.js"
import * as JiraCloud from "./JiraCloud.js"
import * as JiraServer from "./JiraServer.js"
import * as MsTeams from "./MsTeams.js"
import * as Plugins from "./Plugins.js"
import * as Slack from "./Slack.js"
import * as Vsts from "./Vsts.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface BuiltinOptions {
  readonly jiraServer?: JiraServer.Options
}

/**
 * Fresh instances of every built-in provider (each with its own caches).
 *
 * @since 0.1.0
 * @category constructors
 */
export const builtins = (options: BuiltinOptions = {}): ReadonlyArray<Provider> => [
  JiraServer.make(options.jiraServer),
  GitHub.make(),
  GitHub.makeEnterprise(),
  GitLab.make(),
  JiraCloud.make(),
  Bitbucket.make(),
  Bitbucket.makeServer(),
  Vsts.make(),
  MsTeams.make(),
  Plugins.make(),
  Slack.make(),
  Discord.make()
]

/**
 * The registry of built-in providers, plus `extra` ones (which replace a built-in of the same name).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: BuiltinOptions = {},
  extra: ReadonlyArray<Provider> = []
): Layer.Layer<ProviderRegistry.ProviderRegistry> =>
  Layer.sync(ProviderRegistry.ProviderRegistry, () => {
    const names = new Set(extra.map((p) => p.name))
    return ProviderRegistry.make([...builtins(options).filter((p) => !names.has(p.name)), ...extra])
  })
