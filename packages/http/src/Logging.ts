/**
 * JSON logs, one object per line, with secrets redacted (docs/interfaces.md: `authorization`, `x-gitlab-token`,
 * `shared-secret`, `x-hub-signature*`, `x-slack-signature`, `x-cellgate-signature`). Every text of a line (message,
 * field values, cause) also goes through core's one structural redactor (`Redaction.redactText`): Jira Server tokens
 * in paths, JWTs and `jwt` query values never reach a line, whatever the spelling of the path.
 *
 * @since 0.1.0
 */
import { Redaction } from "@cellgate/core"
import type { Scope } from "effect"
import { Cause, Effect, HashMap, Inspectable, Layer, Logger, Redacted } from "effect"
import * as Fs from "node:fs"

const SECRET_HEADERS =
  /^(authorization|x-gitlab-token|shared-secret|x-hub-signature.*|x-slack-signature|x-cellgate-signature|proxy-authorization|cookie|webhooksecret|sharedsecret|secret|token)$/i

/**
 * Whether a header (or log field) name carries a secret.
 *
 * @since 0.1.0
 * @category redaction
 */
export const isSecretName = (name: string): boolean => SECRET_HEADERS.test(name)

/**
 * A copy of `value` with every secret field replaced by `<redacted>` (deep; `Redacted` values too) and every string
 * through `Redaction.redactText` (tokens and JWTs in paths and text).
 *
 * @since 0.1.0
 * @category redaction
 */
export const redact = (value: unknown, depth = 0): unknown => {
  if (typeof value === "string") return Redaction.redactText(value)
  if (Redacted.isRedacted(value)) return "<redacted>"
  if (value === null || typeof value !== "object" || depth > 8) return value
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = isSecretName(k) ? "<redacted>" : redact(v, depth + 1)
  return out
}

/**
 * Where log lines go. `hold()` buffers lines until `release()` (so that `serve`'s first stdout line is the
 * listening line, whatever the store logs while it starts).
 *
 * @since 0.1.0
 * @category models
 */
export interface LogSink {
  readonly write: (line: string) => void
  readonly hold: () => void
  readonly release: () => void
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeSink = (out: (line: string) => void): LogSink => {
  let held: Array<string> | undefined
  return {
    write: (line) => {
      if (held !== undefined) held.push(line)
      else out(line)
    },
    hold: () => {
      held ??= []
    },
    release: () => {
      const lines = held
      held = undefined
      if (lines !== undefined) { for (const line of lines) out(line) }
    }
  }
}

/**
 * Joins the lines written in one turn of the event loop into one write (stdout on a pipe is synchronous on Linux:
 * one write per log line would put a system call on every request). While the scope is open, whatever is pending is
 * written synchronously if the process exits; closing the scope writes it (through `write`) and removes that exit
 * hook, so no hook outlives its sink, however many sinks a process makes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const batched = (
  write: (text: string) => void,
  fd = 1
): Effect.Effect<(line: string) => void, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        let pending: Array<string> = []
        let scheduled = false
        const flush = () => {
          scheduled = false
          if (pending.length === 0) return
          const text = pending.join("\n") + "\n"
          pending = []
          write(text)
        }
        const flushSync = () => {
          if (pending.length === 0) return
          try {
            Fs.writeSync(fd, pending.join("\n") + "\n")
          } catch {
            // the descriptor is gone: nothing to do
          }
          pending = []
        }
        process.once("exit", flushSync)
        const push = (line: string) => {
          pending.push(line)
          if (!scheduled) {
            scheduled = true
            setImmediate(flush)
          }
        }
        return { push, flush, flushSync }
      }),
      ({ flush, flushSync }) =>
        Effect.sync(() => {
          process.off("exit", flushSync)
          flush()
        })
    ),
    ({ push }) => push
  )

/**
 * A sink on the process's stdout, batched (see `batched`) for as long as the scope is open; closing the scope writes
 * what is pending.
 *
 * @since 0.2.0
 * @category constructors
 */
export const stdoutSink: Effect.Effect<LogSink, never, Scope.Scope> = Effect.map(
  batched((text) => process.stdout.write(text)),
  makeSink
)

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype

/** The text parts of a message; a plain object after the first part is a set of fields of the line. */
const messageText = (message: unknown, entry: Record<string, unknown>): string => {
  const parts = Array.isArray(message) ? message : [message]
  const texts: Array<string> = []
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]
    if (i > 0 && isPlainObject(p)) {
      for (const k in p) entry[k] = isSecretName(k) ? "<redacted>" : redact(p[k])
    } else texts.push(typeof p === "string" ? p : Inspectable.toStringUnknown(redact(p), 0))
  }
  return Redaction.redactText(texts.join(" "))
}

/**
 * `{"time","level","message", ...annotations, "cause"?}` per line.
 *
 * @since 0.1.0
 * @category constructors
 */
export const jsonLogger = (sink: LogSink): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, date, logLevel, message }) => {
    const entry: Record<string, unknown> = {
      time: date.toISOString(),
      level: logLevel.label.toLowerCase(),
      message: ""
    }
    entry.message = messageText(message, entry)
    if (HashMap.size(annotations) > 0) {
      for (const [k, v] of annotations) entry[k] = isSecretName(k) ? "<redacted>" : redact(v)
    }
    if (!Cause.isEmpty(cause)) entry.cause = Redaction.redactText(Cause.pretty(cause, { renderErrorCause: true }))
    let line: string
    try {
      line = JSON.stringify(entry)
    } catch {
      line = JSON.stringify({ time: entry.time, level: entry.level, message: entry.message })
    }
    sink.write(line)
  })

/**
 * Replaces Effect's default logger with the JSON logger writing to `sink`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (sink: LogSink): Layer.Layer<never> => Logger.replace(Logger.defaultLogger, jsonLogger(sink))

/**
 * The JSON logger on stdout (`stdoutSink`), flushed when the layer is released.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStdout: Layer.Layer<never> = Layer.unwrapScoped(Effect.map(stdoutSink, layer))
