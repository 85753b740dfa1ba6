/**
 * PIDs the trigger saw handed out and the loop has not read yet. Reading a new process
 * costs ~0.2–0.6 ms, so a burst of thousands (a fork bomb's sleepers, a pool starting)
 * takes seconds: read in one go, it would hide every process started and gone meanwhile.
 * The loop reads a tick's budget at a time, newest range first, so a newcomer is read
 * within a tick or two while the burst's long-lived processes wait their turn. Within a
 * range PIDs go up, so a parent comes before the children it forked in the same tick.
 */
import type { PidRange } from "./pid-trigger.ts";

/** Ranges kept apart; beyond, two adjacent ones are joined. */
const maxRanges = 256;

interface Pending {
  /** The lowest PID of the range not taken yet. */
  next: number;
  last: number;
  /** When the trigger saw it handed out. */
  at: number;
}

export class PidBacklog {
  /** Oldest first: taken from the end. */
  private readonly ranges: Pending[] = [];
  private pending = 0;

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** PIDs waiting. */
  get size(): number {
    return this.pending;
  }

  /** PIDs handed out at `at`, oldest range first (PidChange.ranges). */
  add(ranges: readonly PidRange[], at: number): void {
    for (const { first, last } of ranges) {
      if (first > last) continue;
      this.ranges.push({ next: first, last, at });
      this.pending += last - first + 1;
    }
    if (this.ranges.length > maxRanges) this.joinAdjacent();
  }

  /** The next PID to read: the newest range's lowest. */
  take(): { pid: number; at: number } | undefined {
    const top = this.ranges.at(-1);
    if (top === undefined) return undefined;
    const pid = top.next++;
    if (top.next > top.last) this.ranges.pop();
    this.pending--;
    return { pid, at: top.at };
  }

  /** Takes `pid` out wherever it waits (a parent read before its child): when it was handed out, undefined if not pending. */
  remove(pid: number): number | undefined {
    const i = this.indexOf(pid);
    if (i < 0) return undefined;
    const r = this.ranges[i]!;
    const below = { ...r, last: pid - 1 };
    const above = { ...r, next: pid + 1 };
    // The lower part is taken first, so it goes nearer the end.
    this.ranges.splice(i, 1, ...[above, below].filter((p) => p.next <= p.last));
    this.pending--;
    return r.at;
  }

  /** Takes, oldest first, every PID handed out before `at`. */
  *takeHandedOutBefore(at: number): Generator<{ pid: number; at: number }> {
    for (let r = this.ranges[0]; r !== undefined && r.at < at; r = this.ranges[0]) {
      const pid = r.next++;
      if (r.next > r.last) this.ranges.shift();
      this.pending--;
      yield { pid, at: r.at };
    }
  }

  has(pid: number): boolean {
    return this.indexOf(pid) >= 0;
  }

  /** The range `pid` waits in, -1 when it waits in none. */
  private indexOf(pid: number): number {
    return this.ranges.findIndex((r) => r.next <= pid && pid <= r.last);
  }

  /**
   * Bounds has() and remove() in a long burst: consecutive ticks hand out contiguous ranges,
   * so the oldest such pair becomes one (read oldest-first within it, which for the oldest
   * PIDs costs nothing). A pod that wraps pid_max hundreds of times in one burst keeps more.
   */
  private joinAdjacent(): void {
    const i = this.ranges.findIndex((r, j) => j + 1 < this.ranges.length && r.last + 1 === this.ranges[j + 1]!.next);
    if (i < 0) return;
    const [older, newer] = [this.ranges[i]!, this.ranges[i + 1]!];
    this.ranges.splice(i, 2, { next: older.next, last: newer.last, at: older.at });
  }
}
