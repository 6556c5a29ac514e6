#!/usr/bin/env node
// The `cellgate` executable. A committed file (not build output) so that npm links it at install time, before the
// root `prepare` script has built packages/http/dist.
import { main } from "../dist/Cli.js"

main()
