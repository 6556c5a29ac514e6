// The packages as a new user gets them: build, `npm pack` the three workspaces, install the tarballs into a fresh
// project with its own `effect` and no database driver, type-check and run test/packaging/consumer/main.ts there.
// Set CELLGATE_SKIP_PACK=1 to skip (it needs the npm cache: the consumer installs from it with --prefer-offline).
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const template = fileURLToPath(new URL("./consumer/main.ts", import.meta.url))
const tsc = path.join(root, "node_modules/typescript/bin/tsc")
const versionOf = (pkg: string): string =>
  JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")).version

// The database drivers and everything only they (or @effect/platform-node) need: a Memory user installs none.
const DRIVERS = ["better-sqlite3", "pg", "@effect/sql", "@effect/sql-sqlite-node", "@effect/sql-pg"]
const NOT_FOR_MEMORY = [...DRIVERS, "@effect/cluster", "@effect/rpc", "@effect/workflow", "@effect/experimental"]

// npm's own variables (`npm_config_local_prefix`, `npm_config_prefix`, …) when run by `npm test`: a child npm must
// see the consumer as its project, not this workspace.
const childEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")))

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (file: string, args: ReadonlyArray<string>, cwd: string): Promise<Run> =>
  new Promise((resolve) => {
    execFile(file, args, { cwd, env: childEnv(), maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resolve({ code, stdout, stderr })
    })
  })

const ok = async (file: string, args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const r = await run(file, args, cwd)
  if (r.code !== 0) {
    throw new Error(`${path.basename(file)} ${args.join(" ")} (in ${cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

const npm = (args: ReadonlyArray<string>, cwd: string) =>
  ok(process.platform === "win32" ? "npm.cmd" : "npm", args, cwd)
const node = (args: ReadonlyArray<string>, cwd: string) => run(process.execPath, args, cwd)
const install = ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts", "--loglevel=error"]

/** Prints one JSON line: how `specifier` imports in the consumer (`ok`, or the error's code and message). */
const probe = async (consumer: string, specifier: string) => {
  const script = `import(${JSON.stringify(specifier)}).then(
    (m) => console.log(JSON.stringify({ ok: true, keys: Object.keys(m).sort() })),
    (e) => console.log(JSON.stringify({ ok: false, code: e.code, message: String(e.message) })))`
  const r = await node(["--input-type=module", "-e", script], consumer)
  assert.strictEqual(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as {
    readonly ok: boolean
    readonly keys?: ReadonlyArray<string>
    readonly code?: string
    readonly message?: string
  }
}

const installed = (consumer: string, pkg: string) => fs.existsSync(path.join(consumer, "node_modules", pkg))

const effectCopies = async (consumer: string) =>
  new Set(
    (await npm(["ls", "effect", "--all", "--parseable"], consumer)).split("\n").map((l) => l.trim()).filter((l) =>
      l.endsWith(`${path.sep}effect`)
    )
  )

describe.skipIf(process.env.CELLGATE_SKIP_PACK === "1")("the packed packages in a fresh project", () => {
  let work: string
  let consumer: string
  const tarballs: Record<string, string> = {}

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "cellgate-pack-"))
    consumer = path.join(work, "consumer")
    // the packages only (the tests are not packed)
    await ok(process.execPath, [tsc, "-b", "packages/core", "packages/adapters", "packages/http"], root)
    const packed: ReadonlyArray<{ readonly name: string; readonly filename: string }> = JSON.parse(
      await npm([
        "pack",
        "--json",
        "--loglevel=error",
        "--pack-destination",
        work,
        "-w",
        "packages/core",
        "-w",
        "packages/adapters",
        "-w",
        "packages/http"
      ], root)
    )
    for (const p of packed) tarballs[p.name] = path.join(work, p.filename)

    fs.mkdirSync(path.join(consumer, "src"), { recursive: true })
    fs.writeFileSync(
      path.join(consumer, "package.json"),
      JSON.stringify({ name: "cellgate-consumer", version: "1.0.0", private: true, type: "module" }, null, 2)
    )
    fs.writeFileSync(
      path.join(consumer, "tsconfig.json"),
      JSON.stringify(
        {
          compilerOptions: {
            strict: true,
            exactOptionalPropertyTypes: true,
            skipLibCheck: false,
            noEmitOnError: true,
            target: "ES2022",
            lib: ["ES2022"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            types: ["node"],
            rootDir: "src",
            outDir: "dist"
          },
          include: ["src"]
        },
        null,
        2
      )
    )
    fs.copyFileSync(template, path.join(consumer, "src/main.ts"))
    // an application that uses the memory store: core, adapters, its own effect — no driver
    await npm([
      ...install,
      tarballs["@cellgate/core"]!,
      tarballs["@cellgate/adapters"]!,
      `effect@${versionOf("effect")}`,
      `@types/node@${versionOf("@types/node")}`
    ], consumer)
  }, 240_000)

  afterAll(() => {
    if (work !== undefined) fs.rmSync(work, { recursive: true, force: true })
  })

  it("each tarball holds the built JavaScript and declarations, and no build info", async () => {
    for (const name of ["@cellgate/core", "@cellgate/adapters", "@cellgate/http"]) {
      const listing = await ok("tar", ["tzf", tarballs[name]!], work)
      const files = listing.split("\n")
      assert.include(files, "package/dist/index.js", name)
      assert.include(files, "package/dist/index.d.ts", name)
      assert.include(files, "package/README.md", name)
      assert.isFalse(files.some((f) => f.endsWith(".tsbuildinfo")), `${name} packs its .tsbuildinfo`)
    }
  })

  it("a memory user installs neither a database driver nor what only the drivers need", () => {
    for (const pkg of NOT_FOR_MEMORY) assert.isFalse(installed(consumer, pkg), `${pkg} was installed`)
  })

  it("the consumer program type-checks (strict, NodeNext, no skipLibCheck) and answers 202", async () => {
    await ok(process.execPath, [tsc, "-p", "tsconfig.json"], consumer)
    const r = await node(["dist/main.js"], consumer)
    assert.strictEqual(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split("\n")
    assert.deepStrictEqual(JSON.parse(lines[lines.length - 1]!), {
      status: 202,
      mailboxes: ["eu:1", "us:1"],
      control: 404
    })
  }, 120_000)

  it("the adapters root loads without a driver; the driver modules say which package is missing", async () => {
    const adapters = await probe(consumer, "@cellgate/adapters")
    assert.isTrue(adapters.ok, adapters.message)
    assert.deepStrictEqual(adapters.keys, ["HttpRegionClient", "Memory"])
    const sqlite = await probe(consumer, "@cellgate/adapters/Sqlite")
    assert.strictEqual(sqlite.code, "ERR_MODULE_NOT_FOUND")
    assert.include(sqlite.message, "@effect/sql")
    const postgres = await probe(consumer, "@cellgate/adapters/Postgres")
    assert.strictEqual(postgres.code, "ERR_MODULE_NOT_FOUND")
    assert.include(postgres.message, "@effect/sql")
  })

  it("./internal/* is closed", async () => {
    for (const pkg of ["@cellgate/core", "@cellgate/adapters"]) {
      const internal = await probe(consumer, `${pkg}/internal/anything`)
      assert.strictEqual(internal.code, "ERR_PACKAGE_PATH_NOT_EXPORTED", pkg)
    }
  })

  it("with @cellgate/http added: its root loads, still no driver, and one copy of effect", async () => {
    await npm([...install, tarballs["@cellgate/http"]!], consumer)
    for (const pkg of DRIVERS.filter((d) => d !== "@effect/sql")) {
      assert.isFalse(installed(consumer, pkg), `${pkg} was installed`)
    }
    const http = await probe(consumer, "@cellgate/http")
    assert.isTrue(http.ok, http.message)
    assert.include(http.keys ?? [], "makeServer")
    assert.deepStrictEqual([...(await effectCopies(consumer))], [path.join(consumer, "node_modules", "effect")])
  }, 120_000)
})
