/**
 * The run-state file in the sidecar's emptyDir (which outlives the sidecar's container, not
 * the pod): read once at start, then rewritten every second with the time and ns_last_pid,
 * and once more on an orderly stop. Each write replaces the file whole (rename), so a kill
 * between two writes leaves the previous one intact.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readLastPid, readPidMax } from "../capture/pid-trigger.ts";
import { encodeRunState, previousRun, type PreviousRun, type RunState } from "./run-state.ts";

export const RUN_STATE_FILE = "run-state.json";

export class RunStateFile {
  private readonly path: string;
  private readonly procRoot: string;
  private readonly state: RunState;
  /** What the previous run left (undefined: this is the pod's first run of the sidecar). */
  readonly previous: PreviousRun | undefined;

  /** Reads what the previous run left, and starts this run's file; `firstPid` is this run's own process. */
  constructor(dir: string, procRoot: string, now: number, firstPid: number) {
    this.path = join(dir, RUN_STATE_FILE);
    this.procRoot = procRoot;
    try {
      this.previous = previousRun(readFileSync(this.path, "utf8"), { now, firstPid, pidMax: readPidMax(procRoot) });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.previous = code === "ENOENT" ? undefined : { kind: "damaged", problem: `unreadable: ${(err as Error).message}`, until: now };
    }
    this.state = { startedAt: now, aliveAt: now };
  }

  /** This run is alive at `now`; throws when the file cannot be written. */
  alive(now: number): void {
    this.state.aliveAt = now;
    const lastPid = readLastPid(this.procRoot);
    if (lastPid === undefined) delete this.state.lastPid;
    else this.state.lastPid = lastPid;
    this.write();
  }

  /** This run stops in order: the next start finds it stopped, not killed. */
  stopped(now: number): void {
    this.alive(now);
    this.state.stoppedAt = now;
    this.write();
  }

  private write(): void {
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, encodeRunState(this.state));
    renameSync(temporary, this.path);
  }
}
