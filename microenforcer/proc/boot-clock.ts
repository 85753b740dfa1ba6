/** The wall-clock boot time that /proc start ticks count from. */
import { readFileSync } from "node:fs";
import { parseBootTime, parseUptime } from "./parse.ts";

/** Maps kernel start ticks to wall-clock time. */
export interface BootClock {
  /** Boot time, ms since the epoch. */
  bootMs: number;
  /** USER_HZ: the unit of /proc start times (100 on every Linux ABI in use). */
  ticksPerSecond: number;
}

/**
 * Wall-clock ms that never step back (the wall clock at the thread's start, then monotonic):
 * what start times are compared with, on either thread (the worker's PID history is read on
 * the main thread against creationTimeMs).
 */
export const monotonicNow = (): number => performance.timeOrigin + performance.now();

export function creationTimeMs(clock: BootClock, startTicks: number): number {
  return clock.bootMs + (startTicks * 1000) / clock.ticksPerSecond;
}

/**
 * Prefers now − uptime (10 ms resolution) over btime, which is truncated to whole
 * seconds and would put every creation time up to a second early.
 */
export function readBootClock(procRoot = "/proc"): BootClock {
  const ticksPerSecond = 100;
  const now = Date.now();
  const uptime = parseUptime(readFileSync(`${procRoot}/uptime`, "latin1"));
  if (uptime !== undefined) return { bootMs: now - uptime * 1000, ticksPerSecond };
  const btime = parseBootTime(readFileSync(`${procRoot}/stat`, "latin1"));
  if (btime === undefined) throw new Error(`cannot tell the boot time from ${procRoot}/uptime or ${procRoot}/stat`);
  return { bootMs: btime * 1000, ticksPerSecond };
}
