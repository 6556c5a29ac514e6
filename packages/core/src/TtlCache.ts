/**
 * A small bounded cache with per-entry expiry, for the hot path (verified webhook tokens).
 *
 * Written by hand rather than with Effect's `Cache`: a hit here is one `Map` lookup with no fiber, `Deferred` or
 * `Equal` hashing, and entries expire at their own time (a token's `exp`), not at one TTL for all.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { readonly value: V; readonly expiresAt: number }>()
  constructor(readonly capacity: number) {}

  get(key: K, now: number): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.entries.delete(key)
      return undefined
    }
    return entry.value
  }

  set(key: K, value: V, expiresAt: number): void {
    this.entries.delete(key)
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
    this.entries.set(key, { value, expiresAt })
  }

  clear(): void {
    this.entries.clear()
  }

  get size(): number {
    return this.entries.size
  }
}
