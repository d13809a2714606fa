/**
 * Durable Object stubs by name, kept by the object that calls them (a SessionDO for its
 * conversations, a ConversationDO for its members), least recently used dropped past `max`.
 *
 * Why: a stub looked up per call (`ns.get(ns.idFromName(name))`) costs a DurableObjectId and a
 * stub, C++ objects the isolate holds through handles until its next full collection. Under
 * bench:latency at 500 msg/s a heap snapshot of the edge held 7,902 DurableObjectIds after
 * ~8,000 messages, and every scavenge walks those handles: its root phase grew to 24 ms.
 *
 * A stub that failed may stay broken (a disconnected or reset actor): callers `drop` it on an
 * error, and the next `get` makes a new one.
 */
export class StubCache<S> {
  private readonly stubs = new Map<string, S>();

  /** `lookup`: a new stub for `name` (`ns.get(ns.idFromName(name))`). */
  constructor(
    private readonly lookup: (name: string) => S,
    private readonly max = 1024,
  ) {}

  get(name: string): S {
    const hit = this.stubs.get(name);
    if (hit) {
      // Most recently used last: Map keeps insertion order.
      this.stubs.delete(name);
      this.stubs.set(name, hit);
      return hit;
    }
    const stub = this.lookup(name);
    this.stubs.set(name, stub);
    if (this.stubs.size > this.max) this.stubs.delete(this.stubs.keys().next().value!);
    return stub;
  }

  /** Forgets `name`'s stub (after a failed call): the next `get` makes a new one. */
  drop(name: string): void {
    this.stubs.delete(name);
  }

  get size(): number {
    return this.stubs.size;
  }
}
