import { defineConfig } from "vitest/config"

export default defineConfig({
  ssr: { resolve: { conditions: ["@cellgate/source"] } },
  test: {
    include: ["test/**/*.test.ts", "examples/embedded/test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
