/**
 * The contract between the capture worker and the main thread: the events the worker posts,
 * in order (the process tracker and the watch pipeline read them), and the controls it
 * reads from shared memory at every tick.
 */
import type { NetworkSample } from "../net/network-sampler.ts";
import type { ProcSnapshot } from "../proc/reader.ts";

/** How a process was found: by the /proc poller (trigger, rescan, startup) or by the preload library's report. */
export type Detection = "trigger" | "rescan" | "startup" | "preload";
export type SpawnImage = "exec" | "fork-only" | "exec-unseen";

export type CaptureEvent =
  /**
   * image: `exec` when the snapshot shows the program the process runs; `fork-only` when it
   * kept its parent's image while watched (a forked worker or subshell); `exec-unseen` when
   * it exited while still showing its parent's image, so what it exec'd, if anything, is unknown.
   */
  | { type: "spawn"; snapshot: ProcSnapshot; detection: Detection; observedAt: number; image: SpawnImage }
  | { type: "exec"; snapshot: ProcSnapshot; observedAt: number }
  /** exitStatus: the zombie's wait(2) status, when the sensor saw it as a zombie (proc/parse.ts, StatFields). */
  | { type: "exit"; pid: number; startTicks: number; observedAt: number; exitStatus?: number }
  | ({ type: "gap" } & GapReport)
  | { type: "trigger"; mode: "ns_last_pid" | "scan"; reason?: string }
  /**
   * The loop did not run from `since` (its last look) to `until`, though a look was due long
   * before: the sensor was stopped (SIGSTOP, a frozen cgroup) or starved of CPU. pidCount: the
   * PIDs the namespace handed out meanwhile (unknown without ns_last_pid, or when set back).
   */
  | { type: "stall"; since: number; until: number; pidCount?: number }
  /**
   * ns_last_pid was written back (`count` times from `since` to `until`; `lastPid` after the
   * last): by a process with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the namespace. The
   * PIDs handed out around it are unknown: processes gone before the rescan went uncounted,
   * and reports of gone processes that claim to have started then cannot be checked.
   */
  | { type: "pid-set-back"; count: number; since: number; until: number; lastPid: number }
  /** What one read of the socket tables found (only while the network sensor is on). */
  | { type: "network"; sample: NetworkSample; observedAt: number }
  | { type: "error"; message: string };

/**
 * What the sensor knows it missed between two looks: PIDs the kernel handed out that were gone
 * before the sensor read them (`pid`), or TCP connections opened in the pod's network
 * namespace whose socket-table rows were gone before the sensor read the tables (`tcp`).
 */
export type GapReport =
  | {
      kind: "pid";
      count: number;
      firstPid: number;
      lastPid: number;
      since: number;
      until: number;
      /** Of `count`, PIDs gone before their turn while the sensor read a burst (see PidBacklog). */
      late?: number;
      /** The most new PIDs waiting to be read at once in the window, when a burst made them wait. */
      backlogPeak?: number;
    }
  | { kind: "tcp"; count: number; since: number; until: number };

/** Slots of the Int32Array (over a SharedArrayBuffer) the main thread controls the worker with. */
export const Control = {
  /** 1: finish the tick, report the last gaps, and end. */
  stop: 0,
  /** 1: the policy wants the socket sensor. */
  network: 1,
  /** 1: the preload library reports execs (the loop may sleep longer while idle). */
  preload: 2,
  /** 1: the policy wants interpreters' stdio read at first sight (reverse shells). */
  stdio: 3,
  /** Counts the reported processes posted for the loop to adopt: it reads its port only when this moved. */
  adopted: 4,
} as const;
export const controlSlots = 5;
