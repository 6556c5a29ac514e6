/**
 * The keys a schema knows, read from its own AST (nothing listed by hand): what an unknown key of the configuration
 * file was probably meant to be.
 *
 * @internal
 */
import * as AutoCorrect from "@effect/cli/AutoCorrect"
import * as CliConfig from "@effect/cli/CliConfig"
import type { SchemaAST as AST } from "effect"

/** The keys an object at `path` may have (the encoded side: what the file writes); `open` when any key is accepted. */
export interface KnownKeys {
  readonly keys: ReadonlyArray<string>
  readonly open: boolean
}

const merge = (all: ReadonlyArray<KnownKeys>): KnownKeys => ({
  keys: Array.from(new Set(all.flatMap((k) => k.keys))),
  open: all.some((k) => k.open)
})

const none: KnownKeys = { keys: [], open: false }

/** The keys of the object(s) `ast` may decode at `path` (through transformations, refinements, unions, arrays). */
export const knownKeysAt = (ast: AST.AST, path: ReadonlyArray<PropertyKey>): KnownKeys => {
  switch (ast._tag) {
    case "Transformation":
      return knownKeysAt(ast.from, path)
    case "Refinement":
      return knownKeysAt(ast.from, path)
    case "Suspend":
      return knownKeysAt(ast.f(), path)
    case "Union":
      return merge(ast.types.map((t) => knownKeysAt(t, path)))
    case "TupleType": {
      if (path.length === 0) return none
      const [head, ...rest] = path
      const index = typeof head === "number" ? head : Number(head)
      const element = ast.elements[index]?.type ?? ast.rest[0]?.type
      return element === undefined ? none : knownKeysAt(element, rest)
    }
    case "TypeLiteral": {
      if (path.length === 0) {
        return {
          keys: ast.propertySignatures.flatMap((ps) => (typeof ps.name === "string" ? [ps.name] : [])),
          open: ast.indexSignatures.length > 0
        }
      }
      const [head, ...rest] = path
      const property = ast.propertySignatures.find((ps) => ps.name === head)
      if (property !== undefined) return knownKeysAt(property.type, rest)
      return merge(ast.indexSignatures.map((is) => knownKeysAt(is.type, rest)))
    }
    default:
      return none
  }
}

const distance = (a: string, b: string) => AutoCorrect.levensteinDistance(a, b, CliConfig.defaultConfig)

/**
 * The known key closest to `key` (edit distance, letter case ignored), when it is close enough to be a typo: at
 * most 2 edits, or a third of the key's length for long keys. Ties go to the first key the schema declares.
 */
export const suggest = (key: string, known: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1
  for (const candidate of known) {
    const d = distance(key, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/** `unknown key (did you mean "port"?)`, or `unknown key (known keys: …)` when none is close. */
export const unknownKeyMessage = (key: string, known: ReadonlyArray<string>): string => {
  const meant = suggest(key, known)
  if (meant !== undefined) return `unknown key (did you mean ${JSON.stringify(meant)}?)`
  return known.length === 0
    ? "unknown key"
    : `unknown key (known keys: ${known.map((k) => JSON.stringify(k)).join(", ")})`
}

/**
 * An issue at `path` that lies under a key of an open object (`providers.discor.publicKey`) close to one of its
 * declared keys (`discord`): the typo is that key, so the issue is restated there (`providers.discor: unknown key
 * (did you mean "discord"?)`) instead of as a problem of a provider named `discor`.
 */
export const misspeltOpenKey = (
  ast: AST.AST,
  path: ReadonlyArray<PropertyKey>
): { readonly path: ReadonlyArray<PropertyKey>; readonly message: string } | undefined => {
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]
    if (typeof key !== "string") continue
    const known = knownKeysAt(ast, path.slice(0, i))
    if (!known.open || known.keys.includes(key)) continue
    const meant = suggest(key, known.keys)
    if (meant !== undefined) {
      return { path: path.slice(0, i + 1), message: `unknown key (did you mean ${JSON.stringify(meant)}?)` }
    }
  }
  return undefined
}
