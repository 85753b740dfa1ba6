/**
 * The process trigger: `/proc/sys/kernel/ns_last_pid` is the last PID the namespace handed
 * out. It is read every tick (one pread of an open file); when it moves, the PIDs in between
 * are the ones to look at. pspy rescans all of /proc instead, which costs far more per look
 * and so must look less often.
 */
import { OpenProcFile, readProcText } from "../proc/reader.ts";

/** PIDs wrap to this value after reaching pid_max (kernel RESERVED_PIDS). */
const reservedPids = 300;
/** More PIDs than this between two ticks across pid_max is not a wrap (see setBack()). */
const maxWrapPids = 65_536;
const defaultPidMax = 4_194_304;

/** What ns_last_pid says since the last accepted value. */
export interface PidChange {
  current: number;
  /** Set back by root: look at all of /proc instead (see setBack()). */
  setBack: boolean;
  /** The PIDs handed out meanwhile, oldest range first; none when set back. */
  ranges: PidRange[];
  /** How many, when not set back. */
  count?: number;
}

export class PidTrigger {
  private readonly file: OpenProcFile;
  private readonly pidMax: number;
  private last: number;

  /** Throws when ns_last_pid cannot be read (a kernel built without CONFIG_CHECKPOINT_RESTORE). */
  constructor(procRoot: string) {
    this.file = new OpenProcFile(`${procRoot}/sys/kernel/ns_last_pid`, 32);
    try {
      this.last = this.read();
    } catch (err) {
      this.file.close();
      throw err;
    }
    this.pidMax = readPidMax(procRoot);
  }

  /** The last accepted value: the PIDs up to it have been looked at. */
  get lastPid(): number {
    return this.last;
  }

  /** What moved since the last accepted value; undefined when nothing did. */
  changed(): PidChange | undefined {
    const current = this.read();
    if (current === this.last) return undefined;
    const back = setBack(this.last, current, this.pidMax);
    if (back) return { current, setBack: true, ranges: [] };
    return { current, setBack: false, ranges: allocatedRanges(this.last, current, this.pidMax), count: allocatedCount(this.last, current, this.pidMax)! };
  }

  /** The PIDs of `change` have been looked at. */
  accept(change: PidChange): void {
    this.last = change.current;
  }

  close(): void {
    this.file.close();
  }

  private read(): number {
    return Number(this.file.read().trim());
  }
}

/**
 * ns_last_pid went back further than a wrap at pid_max explains: root wrote it (as
 * checkpoint/restore tools do). Walking "the wrap" would visit millions of PIDs, so the
 * loop rescans /proc instead; PIDs that lived and died meanwhile are not counted.
 */
export function setBack(last: number, current: number, pidMax: number): boolean {
  return current < last && pidMax - last + Math.max(0, current - reservedPids) > maxWrapPids;
}

/** The namespace's pid_max (where PIDs wrap), or the kernel's default when unreadable. */
export function readPidMax(procRoot: string): number {
  try {
    return Number(readProcText(`${procRoot}/sys/kernel/pid_max`).trim()) || defaultPidMax;
  } catch {
    return defaultPidMax;
  }
}

/** The last PID the namespace handed out, undefined when unreadable (a kernel without CONFIG_CHECKPOINT_RESTORE). */
export function readLastPid(procRoot: string): number | undefined {
  try {
    return Number(readProcText(`${procRoot}/sys/kernel/ns_last_pid`).trim()) || undefined;
  } catch {
    return undefined;
  }
}

/** How many PIDs were handed out after `last` up to `current`, across a wrap at pid_max; undefined when set back. */
export function allocatedCount(last: number, current: number, pidMax: number): number | undefined {
  if (current >= last) return current - last;
  if (setBack(last, current, pidMax)) return undefined;
  return pidMax - 1 - last + (current - Math.min(reservedPids, current) + 1);
}

/** PIDs `first` to `last`, both included. */
export interface PidRange {
  first: number;
  last: number;
}

/** PIDs handed out after `last` up to `current`, across a wrap at pid_max: in the order handed out. */
export function allocatedRanges(last: number, current: number, pidMax: number): PidRange[] {
  if (current > last) return [{ first: last + 1, last: current }];
  const wrapped = { first: Math.min(reservedPids, current), last: current };
  return last + 1 < pidMax ? [{ first: last + 1, last: pidMax - 1 }, wrapped] : [wrapped];
}
