#!/usr/bin/env node
/**
 * The `cellgate` executable.
 *
 * @since 0.1.0
 */
import { main } from "./Cli.js"

main()
