/**
 * Calls that arrive together travel as one: `send` gets a batch of items and answers one result
 * per item, in order. An idle batcher sends at once (with the calls made in the same turn of the
 * event loop); while a batch is on its way, new calls wait and leave together as soon as it is
 * answered, at most `max` per batch. A failed batch fails each of its calls, and only those.
 */
export class Batcher<Q, A> {
  private queue: { item: Q; resolve: (a: A) => void; reject: (err: unknown) => void }[] = [];
  private busy = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly send: (items: Q[]) => Promise<A[]>,
    private readonly max: number,
    /** An idle batcher waits this long for more calls before it sends (default 0: the same turn only). */
    private readonly gatherMs = 0,
  ) {}

  call(item: Q): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.busy) return;
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.gatherMs);
  }

  private async run(): Promise<void> {
    const batch = this.queue.splice(0, this.max);
    if (batch.length === 0) return;
    this.busy = true;
    try {
      const answers = await this.send(batch.map((b) => b.item));
      if (answers.length !== batch.length) throw new Error(`expected ${batch.length} answers, got ${answers.length}`);
      batch.forEach((b, i) => b.resolve(answers[i]!));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.busy = false;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
