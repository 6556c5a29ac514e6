// The physical limit on this machine: a bare node:http server that reads the body and answers 202.
import { createServer } from "node:http"

const port = Number(process.argv[2] ?? 0)
const server = createServer((req, res) => {
  req.on("data", () => {})
  req.on("end", () => {
    res.statusCode = 202
    res.end()
  })
})
server.keepAliveTimeout = 60_000
server.listen(port, "127.0.0.1", () => console.log(`limit listening on http://127.0.0.1:${server.address().port}`))
