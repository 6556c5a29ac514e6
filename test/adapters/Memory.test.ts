// The conformance suite on the memory store (the reference the SQL stores are held to).
import { layer } from "@effect/vitest"
import { Layer } from "effect"
import { memoryStore } from "../support/Stores.js"
import { conformance } from "./Conformance.js"

layer(Layer.empty)("memory store", (it) => {
  conformance(it, memoryStore)
})
