// Real processes on a shared PostgreSQL: `cellgate worker` as a child process, a throw-away database driven with
// psql (created per test file, dropped afterwards), and the one-integration Jira Server directory those tests route.
// Needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
import { execFileSync, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { bin, readFixture, root } from "./Http.js"

/** The Jira Server vector of the corpus: its external id, webhook secret and a valid token. */
export const jiraServerVector = JSON.parse(readFixture("jira-server", "sentry_url_jwt_request.json").toString("utf8"))

/** One region `us`, organization 1 in it, Jira Server integration 10 (the corpus vector's) linked to it. */
export const jiraServerDirectory = (regionUrl: string) => ({
  regions: [{ name: "us", url: regionUrl }],
  organizations: [{ id: 1, slug: "acme", region: "us" }],
  integrations: [{
    id: 10,
    provider: "jira_server",
    externalId: jiraServerVector.external_id,
    metadata: { webhookSecret: jiraServerVector.webhook_secret }
  }],
  organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
})

export interface WorkerProcess {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** The first line when it is `cellgate worker metrics on …` (else undefined). */
  readonly metricsUrl: string | undefined
  readonly stop: () => Promise<number | null>
}

/** Starts `cellgate worker …` and resolves on its first stdout line. */
export const startWorker = (
  args: ReadonlyArray<string>,
  env: Record<string, string>
): Promise<WorkerProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "worker", ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let started = false
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`worker did not start: ${stderr}`))
    }, 20_000)
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString()
      const nl = stdout.indexOf("\n")
      if (started || nl === -1) return
      started = true
      clearTimeout(timer)
      const m = /^cellgate worker metrics on (http:\/\/\S+)$/.exec(stdout.slice(0, nl))
      resolve({
        child,
        stdout: () => stdout,
        stderr: () => stderr,
        metricsUrl: m?.[1],
        stop: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
          return exited
        }
      })
    })
    child.on("exit", (code) => {
      if (!started) {
        clearTimeout(timer)
        reject(new Error(`worker exited with ${code}: ${stderr}`))
      }
    })
  })

const base = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test")

export const dbUrl = (name: string): string => {
  const u = new URL(base)
  u.pathname = `/${name}`
  return u.toString()
}

export const psql = (sql: string): void => {
  execFileSync("psql", [dbUrl("postgres"), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], { stdio: "pipe" })
}

/** Creates a throw-away database (a loud failure when PostgreSQL is not running) and returns its name. */
export const createDatabase = (prefix: string): string => {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`
  try {
    psql(`CREATE DATABASE ${name}`)
  } catch (error) {
    throw new Error(
      `PostgreSQL is needed at ${base.host} (DATABASE_URL): start it with ` +
        `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start — ${String(error)}`
    )
  }
  return name
}

export const dropDatabase = (name: string): void => {
  try {
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  } catch {
    // already gone
  }
}
