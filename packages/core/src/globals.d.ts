// The few web-platform globals core relies on. Core's tsconfig has `"types": []` (no Node typings), and
// ES2022's lib does not declare these, although Node 20, Deno, Bun, browsers and workers all provide them.
declare global {
  class TextEncoder {
    encode(input?: string): Uint8Array
  }
  class TextDecoder {
    constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean })
    decode(input?: Uint8Array): string
  }
  /** WHATWG URL parsing (the parser every HTTP client of the platform uses), for reply-target host checks. */
  class URL {
    constructor(url: string, base?: string)
    readonly protocol: string
    readonly hostname: string
    readonly href: string
  }
  /** `application/x-www-form-urlencoded` bodies (Slack commands and interactivity). */
  class URLSearchParams {
    constructor(init?: string)
    get(name: string): string | null
    [Symbol.iterator](): IterableIterator<[string, string]>
  }
  interface CellgateCryptoKey {
    readonly type: string
  }
  const crypto: {
    getRandomValues<T extends Uint8Array>(array: T): T
    randomUUID(): string
    readonly subtle: {
      importKey(
        format: "raw",
        keyData: Uint8Array,
        algorithm: { name: "HMAC"; hash: "SHA-256" } | { name: "Ed25519" },
        extractable: boolean,
        keyUsages: ReadonlyArray<"sign" | "verify">
      ): Promise<CellgateCryptoKey>
      sign(algorithm: "HMAC" | { name: "HMAC" }, key: CellgateCryptoKey, data: Uint8Array): Promise<ArrayBuffer>
      verify(
        algorithm: "HMAC" | "Ed25519" | { name: "HMAC" } | { name: "Ed25519" },
        key: CellgateCryptoKey,
        signature: Uint8Array,
        data: Uint8Array
      ): Promise<boolean>
      digest(algorithm: "SHA-256", data: Uint8Array): Promise<ArrayBuffer>
    }
  }
}

export {}
