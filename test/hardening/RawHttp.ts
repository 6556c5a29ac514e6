// A raw HTTP/1.1 exchange over node:net, for what a client library would not send (request targets that are not
// paths, `Expect: 100-continue` without a body): write bytes, read what comes back until the server closes the
// connection (or `idleMs` passes with nothing new).
import * as Net from "node:net"

export interface RawAnswer {
  /** Everything received, as latin1 text. */
  readonly raw: string
  /** The status codes of every response head received, in order (an interim `100` included). */
  readonly statuses: ReadonlyArray<number>
  /** The body of the last response (after its blank line). */
  readonly body: string
  /** The server closed the connection. */
  readonly closed: boolean
}

export const exchange = (
  url: string,
  request: string,
  options: { readonly idleMs?: number; readonly timeoutMs?: number } = {}
): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = Net.connect({ host: hostname, port: Number(port) })
    let raw = ""
    let closed = false
    let idle: NodeJS.Timeout | undefined
    const finish = () => {
      clearTimeout(idle)
      clearTimeout(deadline)
      socket.destroy()
      const statuses = [...raw.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))
      const last = raw.lastIndexOf("\r\n\r\n")
      resolve({ raw, statuses, body: last === -1 ? "" : raw.slice(last + 4), closed })
    }
    const deadline = setTimeout(finish, options.timeoutMs ?? 5_000)
    const armIdle = () => {
      clearTimeout(idle)
      idle = setTimeout(finish, options.idleMs ?? 1_000)
    }
    socket.setEncoding("latin1")
    socket.on("connect", () => {
      socket.write(request)
      armIdle()
    })
    socket.on("data", (chunk: string) => {
      raw += chunk
      armIdle()
    })
    socket.on("end", () => {
      closed = true
      finish()
    })
    socket.on("error", (error) => {
      if (raw === "") reject(error)
      else finish()
    })
  })
