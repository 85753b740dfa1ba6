/**
 * What one run of the sidecar leaves for the next in its emptyDir, and what a start learns
 * from it. The app runs with the sidecar's UID, so it can kill the sidecar; this is how the
 * restarted sidecar says that it was gone, for how long, and how many PIDs the pod handed out
 * meanwhile (each of them a process or thread nobody watched). Pure: run-state-file.ts reads
 * and writes the file.
 */
import { allocatedCount } from "../capture/pid-trigger.ts";

export interface RunState {
  /** When the run started, and the last moment it was known alive (ms since the epoch). */
  startedAt: number;
  aliveAt: number;
  /** ns_last_pid at `aliveAt`: PIDs after it were handed out while nobody looked (when the run died then). */
  lastPid?: number;
  /** The run stopped on a signal (SIGTERM, SIGINT) and said so: set as its last write. */
  stoppedAt?: number;
}

/** What a start finds of the previous run in the same emptyDir. */
export type PreviousRun =
  | {
      /** `unclean`: killed (SIGKILL, a crash, the OOM killer) without a word; `stopped`: stopped on a signal. */
      kind: "unclean" | "stopped";
      /** The sidecar was blind from `since` (its last sign of life) to `until` (this start). */
      since: number;
      until: number;
      /** PIDs handed out meanwhile, this run's own excluded; undefined when ns_last_pid was not readable or was set back. */
      pidCount?: number;
    }
  /** The file is there but not what a run writes: damaged, or written by someone else. */
  | { kind: "damaged"; problem: string; until: number };

export function encodeRunState(state: RunState): string {
  return `${JSON.stringify(state)}\n`;
}

const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;

/** The file's state, or what is wrong with it. */
export function decodeRunState(text: string): RunState | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  const v = (value ?? {}) as Partial<Record<keyof RunState, unknown>>;
  if (!isTime(v.startedAt) || !isTime(v.aliveAt)) return "no startedAt and aliveAt times";
  const state: RunState = { startedAt: v.startedAt, aliveAt: v.aliveAt };
  if (v.lastPid !== undefined) {
    if (!Number.isInteger(v.lastPid) || (v.lastPid as number) < 0) return "lastPid is not a PID";
    state.lastPid = v.lastPid as number;
  }
  if (v.stoppedAt !== undefined) {
    if (!isTime(v.stoppedAt)) return "stoppedAt is not a time";
    state.stoppedAt = v.stoppedAt;
  }
  return state;
}

export interface StartFacts {
  /** This start (ms since the epoch). */
  now: number;
  /**
   * The first PID of this run: the sidecar's own process (a container's process keeps the PID
   * the runtime gave it). PIDs from the previous run's lastPid up to it were somebody else's.
   */
  firstPid: number;
  pidMax: number;
}

/** What the previous run's file says about the time nobody watched. */
export function previousRun(text: string, facts: StartFacts): PreviousRun {
  const state = decodeRunState(text);
  if (typeof state === "string") return { kind: "damaged", problem: state, until: facts.now };
  const stopped = state.stoppedAt !== undefined;
  const run: PreviousRun = { kind: stopped ? "stopped" : "unclean", since: state.stoppedAt ?? state.aliveAt, until: facts.now };
  if (state.lastPid !== undefined) {
    const count = allocatedCount(state.lastPid, facts.firstPid, facts.pidMax);
    // The PID before ours was the last one handed out before this run.
    if (count !== undefined && count > 0) run.pidCount = count - 1;
  }
  return run;
}
