/**
 * When the PID namespace handed out which PIDs, as the capture worker's trigger saw
 * ns_last_pid move, shared with the main thread in a SharedArrayBuffer. A preload report
 * whose process is gone before the sidecar could read it cannot be checked against the
 * process, only against this: a process that ran got its PID from the namespace when it
 * started, so a (pid, start time) that no allocation explains was made up. Without it, any
 * process of the pod could fill the export with records of programs that never ran.
 *
 * Entries, oldest first, each closing a window of time (from, to]:
 * - begin: the trigger's first read (a process started before it is known only by the next);
 * - alive: a process the startup scan found, by its exact (pid, start time);
 * - handed: PIDs (last, after] handed out between two reads of ns_last_pid;
 * - lost: ns_last_pid was set back (see pid-trigger.ts): what was handed out then is unknown.
 * The worker appends; the main thread reads. A full ring forgets its oldest entries, and a
 * claim older than what is kept is unknown, as is every claim without a trigger (no history).
 */
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";

/** What the history says of a claimed (pid, start time) whose process is gone. */
export type Allocation = { kind: "handed-out" } | { kind: "not-handed-out"; detail: string } | { kind: "unknown" };

const Kind = { begin: 1, alive: 2, handed: 3, lost: 4 } as const;
/** kind, pid (alive) or last, after (ns_last_pid after the entry), from, to, start ticks (alive). */
const slots = 6;
/** Entries kept: one per trigger read that found new PIDs, so a minute or more of PIDs handed out every millisecond. */
export const defaultHistoryEntries = 65_536;
/**
 * How far a claimed start may lie outside a window: start times count in 10 ms ticks, the
 * sidecar's boot time is read to 10 ms, and the threads' clocks start apart.
 */
const slackMs = 50;

export class PidHistory {
  readonly buffer: SharedArrayBuffer;
  private readonly count: Int32Array;
  private readonly entries: Float64Array;
  private readonly capacity: number;

  /** A new history of `entries` (the main thread), or the one in `buffer` (the worker). */
  constructor(from: SharedArrayBuffer | number = defaultHistoryEntries) {
    this.buffer = typeof from === "number" ? new SharedArrayBuffer(8 + from * slots * 8) : from;
    this.count = new Int32Array(this.buffer, 0, 1);
    this.capacity = (this.buffer.byteLength - 8) / (slots * 8);
    this.entries = new Float64Array(this.buffer, 8, this.capacity * slots);
  }

  /** The trigger's first read, `lastPid`, at `at`. */
  begin(lastPid: number, at: number): void {
    this.append(Kind.begin, lastPid, lastPid, -Infinity, at, 0);
  }

  /** A process the startup scan found: alive when the history began, whenever it started. */
  alive(pid: number, startTicks: number): void {
    const begun = this.at(Atomics.load(this.count, 0) - 1);
    this.append(Kind.alive, pid, begun.after, -Infinity, begun.to, startTicks);
  }

  /** PIDs (last, current] handed out after the read at `from` and by the read at `to` (current < last: across a wrap, never a set-back). */
  handedOut(last: number, current: number, from: number, to: number): void {
    this.append(Kind.handed, last, current, from, to, 0);
  }

  /** ns_last_pid was set back between the reads at `from` and `to`: what was handed out then is unknown. */
  lost(current: number, from: number, to: number): void {
    this.append(Kind.lost, current, current, from, to, 0);
  }

  /**
   * Whether the namespace handed `pid` out when a process started at `startTicks` would
   * have got it. `lastPid`: ns_last_pid read now, for PIDs handed out since the worker's last read.
   */
  judge(pid: number, startTicks: number, clock: BootClock, lastPid: number | undefined): Allocation {
    const claimMs = creationTimeMs(clock, startTicks);
    const total = Atomics.load(this.count, 0);
    if (total === 0) return { kind: "unknown" };
    const oldest = Math.max(0, total - this.capacity);
    const newest = this.at(total - 1);
    if (lastPid !== undefined && this.holds(pid, newest.after, lastPid) && claimMs >= newest.to - slackMs) return { kind: "handed-out" };
    if (oldest > 0 && claimMs <= this.at(oldest).to + slackMs) return { kind: "unknown" };
    for (let i = this.firstEndingAfter(oldest, total, claimMs - slackMs); i < total; i++) {
      const e = this.at(i);
      if (e.from - slackMs > claimMs) break;
      if (e.kind === Kind.lost) return { kind: "unknown" };
      if (e.kind === Kind.handed && this.holds(pid, e.pid, e.after)) return { kind: "handed-out" };
      if (e.kind === Kind.alive && e.pid === pid && e.startTicks === startTicks) return { kind: "handed-out" };
    }
    // The writer went round meanwhile and may have overwritten what was read.
    if (Atomics.load(this.count, 0) - this.capacity > oldest) return { kind: "unknown" };
    const begun = this.at(oldest);
    const detail =
      claimMs < begun.to - slackMs
        ? `no process ${pid} started then was alive when the sensor started, and none is now`
        : `the namespace did not hand pid ${pid} out around the claimed start`;
    return { kind: "not-handed-out", detail };
  }

  /** PIDs (last, after], across a wrap at pid_max when after < last (a set-back is an entry of its own). */
  private holds(pid: number, last: number, after: number): boolean {
    return after >= last ? pid > last && pid <= after : pid > last || pid <= after;
  }

  /** The first entry in [lo, hi) whose window ends after `ms` (entries end in time order); hi when none. */
  private firstEndingAfter(lo: number, hi: number, ms: number): number {
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).to < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private at(index: number): { kind: number; pid: number; after: number; from: number; to: number; startTicks: number } {
    const o = (index % this.capacity) * slots;
    const e = this.entries;
    return { kind: e[o]!, pid: e[o + 1]!, after: e[o + 2]!, from: e[o + 3]!, to: e[o + 4]!, startTicks: e[o + 5]! };
  }

  private append(kind: number, pid: number, after: number, from: number, to: number, startTicks: number): void {
    const total = Atomics.load(this.count, 0);
    this.entries.set([kind, pid, after, from, to, startTicks], (total % this.capacity) * slots);
    // Published after the entry is written: the reader never sees a half-written one.
    Atomics.store(this.count, 0, total + 1);
  }
}
