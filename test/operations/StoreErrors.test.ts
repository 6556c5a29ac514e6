// A store that cannot be opened says why — connection refused, unknown host, authentication, a missing database, a
// malformed URL — through the `cellgate` process, against the local PostgreSQL, and never shows the password.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { closedPort, ensureBuilt, runCli, tempDir, writeJson } from "../support/Http.js"
import { adminUrl, withClient } from "../support/Postgres.js"

const PASSWORD = "o1-Secret-pw-7731"
const ROLE = `cellgate_nologin_${process.pid}`
let tmp: ReturnType<typeof tempDir>

const admin = (statement: string) =>
  Effect.runPromise(withClient(adminUrl, (sql) => sql.unsafe(statement)).pipe(Effect.orDie))

beforeAll(async () => {
  ensureBuilt()
  tmp = tempDir()
  // pg_hba is `trust` on 127.0.0.1, so a wrong password is accepted: the server's authentication refusal that can
  // be provoked here is a role that may not log in (SQLSTATE 28000, the same class 28 as a wrong password)
  await admin(`CREATE ROLE ${ROLE} NOLOGIN PASSWORD '${PASSWORD}'`)
})

afterAll(async () => {
  await admin(`DROP ROLE IF EXISTS ${ROLE}`)
  tmp?.cleanup()
})

const withUrl = (url: string) => {
  const u = new URL(adminUrl)
  return (f: (u: URL) => void) => {
    f(u)
    return url === "" ? u.toString() : url
  }
}

const mailboxes = async (name: string, url: string) => {
  const file = writeJson(tmp.dir, `${name}.json`, { store: { kind: "postgres", url } })
  return runCli(["mailboxes", "--config", file])
}

describe("a store that cannot be opened says why (exit 1), never the password", () => {
  it("connection refused", async () => {
    const port = await closedPort()
    const url = withUrl("")((u) => {
      u.port = String(port)
      u.password = PASSWORD
    })
    const run = await mailboxes("refused", url)
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("connection refused")
    expect(run.stderr).toContain(`127.0.0.1:${port}`)
    expect(run.stderr).not.toContain(PASSWORD)
  })

  it("an unknown host", async () => {
    const url = withUrl("")((u) => {
      u.hostname = "no-such-host.invalid"
      u.password = PASSWORD
    })
    const run = await mailboxes("unknown-host", url)
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("unknown host")
    expect(run.stderr).toContain("no-such-host.invalid")
    expect(run.stderr).not.toContain(PASSWORD)
  })

  it("authentication refused by the server (a role that may not log in), with the server's reason", async () => {
    const url = withUrl("")((u) => {
      u.username = ROLE
      u.password = PASSWORD
    })
    const run = await mailboxes("auth", url)
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("authentication refused by the server")
    expect(run.stderr).toContain(`role "${ROLE}" is not permitted to log in`)
    expect(run.stderr).not.toContain(PASSWORD)
  })

  it("a database that does not exist", async () => {
    const url = withUrl("")((u) => {
      u.pathname = "/cellgate_no_such_database"
      u.password = PASSWORD
    })
    const run = await mailboxes("no-db", url)
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("database does not exist")
    expect(run.stderr).not.toContain(PASSWORD)
  })

  it("a malformed URL is a configuration error (exit 2) naming store.url, the value not shown", async () => {
    const run = await mailboxes("bad-url", `postgres//postgres:${PASSWORD}@127.0.0.1:5432/test`)
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("store.url: not a PostgreSQL URL")
    expect(run.stderr).not.toContain(PASSWORD)
  })

  it("serve says the same and never prints the listening line", async () => {
    const port = await closedPort()
    const url = withUrl("")((u) => {
      u.port = String(port)
    })
    const file = writeJson(tmp.dir, "serve-refused.json", { store: { kind: "postgres", url } })
    const run = await runCli(["serve", "--config", file, "--port", "0"])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain("connection refused")
    expect(run.stdout).not.toContain("listening")
  })
})
