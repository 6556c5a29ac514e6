/**
 * Runs the example: `npx vite-node examples/embedded/src/main.ts` (port 3000, or `PORT`).
 *
 * Then `curl localhost:3000/api/customers`, and a Jira Server webhook for `acme` (token from
 * `cellgate token jira-server --external-id jira-acme` with `CELLGATE_SECRET=acme-s3cret`):
 * `curl -i -X POST --data '{}' localhost:3000/extensions/jira-server/issue-updated/<token>/`
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as Http from "node:http"
import { cellgate, router } from "./App.js"
import * as Customers from "./Customers.js"

const port = Number(process.env.PORT ?? 3000)

const main = HttpServer.serve(router).pipe(
  HttpServer.withLogAddress,
  Layer.provide(cellgate),
  Layer.provide(Customers.layerMemory(Customers.sample)),
  Layer.provide(NodeHttpServer.layer(() => Http.createServer(), { port, host: "127.0.0.1" }))
)

NodeRuntime.runMain(Layer.launch(main))
