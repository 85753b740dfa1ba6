/**
 * The sensor's own blind spot, counted: PIDs the trigger saw handed out that were gone
 * before they could be read, reported with the socket sensor's missed TCP connections as
 * gap events every gapReportIntervalMs and at the end.
 */
import type { CaptureEvent } from "./events.ts";

/** PIDs remembered per window (each a few bytes): beyond, the count stays as it is. */
const maxRemembered = 65_536;

export class GapCounter {
  private count = 0;
  private firstPid = 0;
  private lastPid = 0;
  private since = 0;
  private late = 0;
  private backlogPeak = 0;
  /** This window's missed PIDs, and whether each was late: a report for one of them takes it out of the gap. */
  private readonly missedPids = new Map<number, boolean>();
  /** PIDs the preload library reported, gone before the trigger got to them: not a gap when it does. */
  private readonly reportedGone = new Set<number>();

  /** Counting starts now. */
  start(now: number): void {
    this.since = now;
  }

  /** A PID handed out and gone before the sensor read it; `late`, it waited its turn behind a burst. */
  missed(pid: number, late = false): void {
    // Reported by the preload library: seen, only not by this loop.
    if (this.reportedGone.delete(pid)) return;
    if (late) this.late++;
    if (this.missedPids.size < maxRemembered) this.missedPids.set(pid, late);
    if (this.count === 0) this.firstPid = pid;
    this.lastPid = pid;
    this.count++;
  }

  /** New PIDs waiting to be read now: evidence of a burst, kept at its peak per window. */
  waiting(count: number): void {
    this.backlogPeak = Math.max(this.backlogPeak, count);
  }

  /** The preload library reported a process that was gone before this loop read it. */
  reported(pid: number): void {
    const late = this.missedPids.get(pid);
    if (late !== undefined) {
      this.missedPids.delete(pid);
      this.count--;
      if (late) this.late--;
    } else if (this.reportedGone.size < maxRemembered) this.reportedGone.add(pid);
  }

  due(now: number, intervalMs: number): boolean {
    return now - this.since >= intervalMs;
  }

  /** The gaps since the last report (`tcp`: connections the socket sensor missed), and a new span from now. */
  take(now: number, tcp: number): CaptureEvent[] {
    const { count, firstPid, lastPid, since, late, backlogPeak } = this;
    const events: CaptureEvent[] = [];
    if (count > 0) {
      events.push({ type: "gap", kind: "pid", count, firstPid, lastPid, since, until: now, ...(late > 0 && { late }), ...(backlogPeak > 0 && { backlogPeak }) });
    }
    if (tcp > 0) events.push({ type: "gap", kind: "tcp", count: tcp, since, until: now });
    [this.count, this.firstPid, this.lastPid, this.since, this.late, this.backlogPeak] = [0, 0, 0, now, 0, 0];
    this.missedPids.clear();
    this.reportedGone.clear();
    return events;
  }
}
