// The command line speaks like one: help names the program, has no colour codes off a terminal, shows optional
// flags as optional; an unknown subcommand is answered with the subcommands of the command it was given to; a bad
// integer is `'abc' is not an integer`. Through the `cellgate` process (stdout a pipe, not a terminal).
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { ensureBuilt, runCli } from "../support/Http.js"

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/

beforeAll(() => ensureBuilt())

describe("cellgate help", () => {
  it("serve --help: `cellgate serve …` with optional flags in brackets, no colour codes, exit 0", async () => {
    const run = await runCli(["serve", "--help"])
    expect(run.code).toBe(0)
    expect(run.stdout).not.toMatch(ANSI)
    expect(run.stdout).toContain("cellgate serve --config file [--port integer] [--no-worker] [--demo]")
    expect(run.stdout).not.toMatch(/^\$ serve/m)
  })

  it("a nested command's help names the whole path", async () => {
    const run = await runCli(["dead-letters", "list", "--help"])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("cellgate dead-letters list --config file [--json]")
    expect(run.stdout).not.toMatch(ANSI)
  })

  it("the top level's help lists the commands, no colour codes even with a TERM that has colours", async () => {
    const run = await runCli(["--help"], { env: { TERM: "xterm-256color", FORCE_COLOR: "1" } })
    expect(run.code).toBe(0)
    expect(run.stdout).not.toMatch(ANSI)
    expect(run.stdout).toMatch(/^cellgate 0\.1\.0$/m)
    expect(run.stdout).toContain("- serve --config file")
  })
})

describe("cellgate on a wrong command line (exit 2)", () => {
  it("an unknown subcommand of token lists token's subcommands", async () => {
    const run = await runCli(["token", "foo"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("cellgate token: unknown command 'foo'; use one of: jira-server")
    expect(run.stderr).not.toContain("'serve'")
  })

  it("token alone shows token's help", async () => {
    const run = await runCli(["token"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("jira-server --external-id text")
    expect(run.stderr).not.toMatch(ANSI)
  })

  it("an unknown top-level command lists the commands", async () => {
    const run = await runCli(["frobnicate"])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/cellgate: unknown command 'frobnicate'; use one of: serve, worker, explain/)
  })

  it("'abc' is not an integer", async () => {
    const run = await runCli(["serve", "--config", "package.json", "--port", "abc"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("'abc' is not an integer")
    expect(run.stderr).not.toMatch(ANSI)
  })
})
