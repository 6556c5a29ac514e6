/**
 * `serve --demo` (what `npm start` runs): local region stubs for the configuration's loopback regions, and one ready
 * `curl` line that posts `examples/jira-issue-updated.json` with a valid Jira Server token.
 *
 * @since 0.1.0
 */
import { jiraServerToken, Redaction } from "@cellgate/core"
import type { Scope } from "effect"
import { Effect, Redacted } from "effect"
import * as Http from "node:http"
import type { Config } from "./Config.js"

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"])

/**
 * For every region of the directory whose URL is on this machine, a tiny HTTP server on that port that logs what it
 * receives (one JSON line) and answers 200. Closed with the scope.
 *
 * @since 0.1.0
 * @category demo
 */
export const startRegionStubs = (config: Config): Effect.Effect<void, never, Scope.Scope> =>
  Effect.forEach(config.directory?.regions ?? [], (region) => {
    const url = new URL(region.url)
    if (!LOOPBACK.has(url.hostname) || url.port === "") return Effect.void
    return Effect.gen(function*() {
      const server = Http.createServer((req, res) => {
        let bytes = 0
        req.on("data", (c: Buffer) => (bytes += c.length))
        req.on("end", () => {
          process.stdout.write(
            JSON.stringify({
              time: new Date().toISOString(),
              level: "info",
              message: "region stub received",
              region: region.name,
              method: req.method,
              path: Redaction.redactPath(req.url ?? ""),
              delivery_id: req.headers["x-cellgate-delivery-id"] ?? null,
              attempt: req.headers["x-cellgate-attempt"] ?? null,
              signed: req.headers["x-cellgate-signature"] !== undefined,
              bytes
            }) + "\n"
          )
          res.writeHead(200, { "content-type": "application/json" }).end("{\"ok\":true}")
        })
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.once("error", (e) => {
            process.stderr.write(`demo: region stub ${region.name} on ${url.host} not started: ${e.message}\n`)
            resume(Effect.void)
          })
          server.listen(
            Number(url.port),
            url.hostname === "localhost" ? "127.0.0.1" : url.hostname,
            () => resume(Effect.void)
          )
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
      )
    })
  }, { discard: true })

/**
 * Prints one `curl` line that posts the sample Jira Server webhook with a token minted for the first Jira Server
 * integration that has a secret.
 *
 * @since 0.1.0
 * @category demo
 */
export const printCurl = (config: Config, baseUrl: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const integration = config.directory?.integrations.find((i) =>
      i.provider === "jira_server" && i.status === "active" && i.metadata.webhookSecret !== undefined
    )
    if (integration === undefined) return
    const secret = Redacted.value(integration.metadata.webhookSecret!)
    const token = yield* Effect.promise(() => jiraServerToken(integration.externalId, secret))
    process.stdout.write(
      `curl -sS -i -X POST -H 'content-type: application/json' --data-binary @examples/jira-issue-updated.json ` +
        `${baseUrl}/extensions/jira-server/issue-updated/${token}/\n`
    )
  })
