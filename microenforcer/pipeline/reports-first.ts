/**
 * On the main thread, a preload report on its way goes before the capture worker's events.
 * A program that asks waits for its verdict, and the poller often sees it while it waits:
 * handled first, that sight costs the program its /proc facts (~100–200 µs), which its
 * report, handled first, makes needless (complete-mode.ts drops a sight that repeats a
 * report). So events that come while a report is on its way wait for it — for maxWaitMs at
 * most from the first of them, however many reports keep coming: a process that keeps
 * connections open cannot hold the poller's events, and its kills, back for longer.
 */
export class ReportsFirst<T> {
  private readonly handle: (batch: T) => void;
  private readonly maxWaitMs: number;
  private queue: T[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(handle: (batch: T) => void, maxWaitMs = 2) {
    this.handle = handle;
    this.maxWaitMs = maxWaitMs;
  }

  /** A batch of events: handled now, unless a report is on its way (or batches wait already: order is kept). */
  offer(batch: T, reportOnItsWay: boolean): void {
    if (!reportOnItsWay && this.queue.length === 0) {
      this.handle(batch);
      return;
    }
    this.queue.push(batch);
    this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
  }

  /** The reports on their way are in (or waited for long enough): what waited, in order. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const queue = this.queue;
    this.queue = [];
    for (const batch of queue) this.handle(batch);
  }
}
