/**
 * Enforcement: SIGKILL, but only the process the finding was about. The (pid, start time)
 * identity is checked right before the signal, so a PID reused since detection is never
 * killed. (A window of microseconds remains between that check and kill(2): Node has no
 * pidfd_send_signal, which would close it.)
 */
import { readStat } from "../proc/reader.ts";

export type KillOutcome = "killed" | "gone" | "denied";

export interface Enforcer {
  kill(pid: number, startTicks: number): KillOutcome;
}

/** PID 1 of the pod is its infrastructure (pause/catatonit): killing it ends every container. */
export function mayKill(pid: number): boolean {
  return pid !== 1;
}

export function createEnforcer(procRoot = "/proc"): Enforcer {
  return {
    kill(pid, startTicks) {
      if (!mayKill(pid)) return "denied";
      if (readStat(pid, procRoot)?.startTicks !== startTicks) return "gone";
      try {
        process.kill(pid, "SIGKILL");
        return "killed";
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === "ESRCH" ? "gone" : "denied";
      }
    },
  };
}
