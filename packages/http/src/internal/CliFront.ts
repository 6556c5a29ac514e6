/**
 * What `@effect/cli` 0.77 does not do as a command line should, done in front of it: help that names the program
 * (`cellgate serve --config file …`, where the library prints `$ serve …`), an unknown subcommand answered with the
 * subcommands of the command it was given to (the library lists the top level's), no colour codes when the output
 * is not a terminal (or `NO_COLOR` is set), and `'abc' is not an integer`. The help itself is the library's
 * (`CommandDescriptor.getHelp`, `Usage.enumerate`, `HelpDoc.toAnsiText`); only the frame is ours.
 *
 * @internal
 */
import * as CliConfig from "@effect/cli/CliConfig"
import type * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Usage from "@effect/cli/Usage"
import type { Console } from "effect"
import { Effect } from "effect"
import { stripVTControlCharacters } from "node:util"

/** Whether colour codes may be written to `stream`: a terminal, and neither `NO_COLOR` nor `TERM=dumb`. */
export const colours = (stream: { readonly isTTY?: boolean }): boolean =>
  stream.isTTY === true && (process.env.NO_COLOR ?? "") === "" && process.env.TERM !== "dumb"

/** `text` as it may be written to `stream`: without colour codes unless `colours(stream)`. */
export const forStream = (text: string, stream: { readonly isTTY?: boolean }): string =>
  colours(stream) ? text : stripVTControlCharacters(text)

/** The library says `'abc' is not a integer`. */
const article = (text: string) => text.replace(/(' is not a) (?=[aeiou])/g, "$1n ")

const fix = (stream: { readonly isTTY?: boolean }) => (args: ReadonlyArray<unknown>) =>
  args.map((a) => (typeof a === "string" ? forStream(article(a), stream) : a))

/**
 * Runs `effect` (the CLI) with a `Console` whose `log` and `error` drop colour codes when their stream is not a
 * terminal, and speak English.
 */
export const withConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (console) => {
    const out = fix(process.stdout)
    const err = fix(process.stderr)
    const wrapped: Console.Console = {
      ...console,
      log: (...args) => console.log(...out(args)),
      info: (...args) => console.info(...out(args)),
      error: (...args) => console.error(...err(args)),
      warn: (...args) => console.warn(...err(args))
    }
    return Effect.withConsole(effect, wrapped)
  })

interface Node {
  readonly name: string
  readonly descriptor: Descriptor.Command<unknown>
  readonly children: ReadonlyArray<Node>
}

/** The command tree of a descriptor (its instructions); `undefined` for a shape this version does not have. */
const toNode = (d: unknown): Node | undefined => {
  const i = d as { _tag?: string; name?: string; command?: unknown; parent?: unknown; children?: Array<unknown> }
  switch (i?._tag) {
    case "Standard":
    case "GetUserInput":
      return typeof i.name === "string"
        ? { name: i.name, descriptor: d as Descriptor.Command<unknown>, children: [] }
        : undefined
    case "Map": {
      const inner = toNode(i.command)
      return inner && { ...inner, descriptor: d as Descriptor.Command<unknown> }
    }
    case "Subcommands": {
      const parent = toNode(i.parent)
      const children = (i.children ?? []).map(toNode)
      if (parent === undefined || children.some((c) => c === undefined)) return undefined
      return { name: parent.name, descriptor: d as Descriptor.Command<unknown>, children: children as Array<Node> }
    }
    default:
      return undefined
  }
}

/** What to print instead of running the command, and the exit code. */
export interface Early {
  readonly stream: "stdout" | "stderr"
  readonly text: string
  readonly code: number
}

const help = (path: ReadonlyArray<Node>, app: { readonly name: string; readonly version: string }): string => {
  const node = path[path.length - 1]!
  const config = CliConfig.defaultConfig
  const prefix = path.slice(0, -1).map((n) => n.name).join(" ")
  const usage = Usage.enumerate(Descriptor.getUsage(node.descriptor), config).map((span) =>
    HelpDoc.p(prefix === "" ? span : Span.concat(Span.text(`${prefix} `), span))
  )
  const doc = [
    HelpDoc.p(`${app.name} ${app.version}`),
    HelpDoc.h1("USAGE"),
    ...usage,
    Descriptor.getHelp(node.descriptor, config)
  ].reduce((all, d) => HelpDoc.sequence(all, d), HelpDoc.h1(Span.code(app.name)))
  return HelpDoc.toAnsiText(doc)
}

/**
 * Looks at the arguments (without `node` and the script) before `@effect/cli` parses them: `--help` / `-h` at any
 * level prints that command's help naming the program; a command that only groups others (`token`), given none
 * or one it does not have, prints its subcommands (exit 2). Anything else is the library's (`undefined`).
 */
export const preflight = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  args: ReadonlyArray<string>,
  app: { readonly name: string; readonly version: string }
): Early | undefined => {
  const root = toNode(command.descriptor)
  if (root === undefined) return undefined
  const path: Array<Node> = [root]
  for (const arg of args) {
    const node = path[path.length - 1]!
    if (arg === "--") break
    if (arg === "-h" || arg === "--help") return { stream: "stdout", text: help(path, app), code: 0 }
    if (node.children.length === 0) continue
    // a built-in option of the top level (`--version`, `--log-level`, `--completions`): the library's
    if (arg.startsWith("-")) return undefined
    const child = node.children.find((c) => c.name === arg)
    if (child === undefined) {
      const where = path.map((n) => n.name).join(" ")
      return {
        stream: "stderr",
        text: `${where}: unknown command '${arg}'; use one of: ${node.children.map((c) => c.name).join(", ")}\n` +
          `(${where} --help shows them)`,
        code: 2
      }
    }
    path.push(child)
  }
  const last = path[path.length - 1]!
  if (last.children.length > 0) {
    return { stream: "stderr", text: help(path, app), code: 2 }
  }
  return undefined
}
