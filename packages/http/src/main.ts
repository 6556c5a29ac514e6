/**
 * The composition root as a script: `node packages/http/dist/main.js serve --config examples/cellgate.json --demo`
 * (the root `npm start`). Same as the `cellgate` executable.
 *
 * @since 0.1.0
 */
import { main } from "./Cli.js"

main()
