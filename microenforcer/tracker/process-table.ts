/**
 * The main thread's one table of processes: those running, by PID, and those that exited
 * within the last exitGraceMs, because a process's exit may be reported before its last
 * connections are. The ProcessTracker fills it; the network monitor reads it to name the
 * owners of sockets. (The capture worker keeps its own state of each PID on its thread:
 * capture/process-watch.ts.)
 */
import type { ProcessInfo } from "./process-tracker.ts";

export class ProcessTable {
  private readonly exitGraceMs: number;
  private readonly running = new Map<number, ProcessInfo>();
  /** The latest process of each PID: running, or exited within the grace period. */
  private readonly latest = new Map<number, ProcessInfo>();
  /** Exited processes → when, oldest first. */
  private readonly exited = new Map<ProcessInfo, number>();

  constructor(exitGraceMs = 2000) {
    this.exitGraceMs = exitGraceMs;
  }

  /** Processes running now. */
  get size(): number {
    return this.running.size;
  }

  add(p: ProcessInfo): void {
    this.running.set(p.pid, p);
    this.latest.set(p.pid, p);
  }

  /** The process running on `pid` now. */
  get(pid: number): ProcessInfo | undefined {
    return this.running.get(pid);
  }

  /** `p` exited at `at`: it stays findable by its identity for exitGraceMs. */
  exit(p: ProcessInfo, at: number): void {
    if (this.running.get(p.pid) === p) this.running.delete(p.pid);
    this.exited.set(p, at);
    for (const [old, exitedAt] of this.exited) {
      if (at - exitedAt <= this.exitGraceMs) break;
      this.exited.delete(old);
      if (this.latest.get(old.pid) === old) this.latest.delete(old.pid);
    }
  }

  /** The process with this identity, running or exited within the grace period. */
  owner(pid: number, startTicks: number): ProcessInfo | undefined {
    const p = this.latest.get(pid);
    return p !== undefined && p.startTicks === startTicks ? p : undefined;
  }

  /** The latest process of `pid`, whatever its start time (the user a problem concerns). */
  latestOf(pid: number): ProcessInfo | undefined {
    return this.latest.get(pid);
  }
}
