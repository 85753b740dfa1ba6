/**
 * The sensor's own blind spot, counted: PIDs the trigger saw handed out that were gone
 * before they could be read, reported with the socket sensor's missed TCP connections as
 * gap events every gapReportIntervalMs and at the end.
 */
import type { CaptureEvent } from "./events.ts";

export class GapCounter {
  private count = 0;
  private firstPid = 0;
  private lastPid = 0;
  private since = 0;

  /** Counting starts now. */
  start(now: number): void {
    this.since = now;
  }

  /** A PID handed out and gone before the sensor read it. */
  missed(pid: number): void {
    if (this.count === 0) this.firstPid = pid;
    this.lastPid = pid;
    this.count++;
  }

  due(now: number, intervalMs: number): boolean {
    return now - this.since >= intervalMs;
  }

  /** The gaps since the last report (`tcp`: connections the socket sensor missed), and a new span from now. */
  take(now: number, tcp: number): CaptureEvent[] {
    const { count, firstPid, lastPid, since } = this;
    const events: CaptureEvent[] = [];
    if (count > 0) events.push({ type: "gap", kind: "pid", count, firstPid, lastPid, since, until: now });
    if (tcp > 0) events.push({ type: "gap", kind: "tcp", count: tcp, since, until: now });
    [this.count, this.firstPid, this.lastPid, this.since] = [0, 0, 0, now];
    return events;
  }
}
