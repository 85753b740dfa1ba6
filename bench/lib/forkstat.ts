/**
 * Optional kernel ground truth: Debian's forkstat reads fork/exec events from the proc
 * connector, which does not depend on looking at /proc in time. It only works from the
 * initial PID namespace, so it runs on the host side and reports host PIDs; the
 * namespace's processes are found as descendants of the `unshare` process.
 */
import { spawn, spawnSync } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

export interface Forkstat {
  /** Stops forkstat; resolves once its output file is complete. */
  stop(): Promise<void>;
}

export function forkstatAvailable(): boolean {
  return spawnSync("forkstat", ["-h"], { stdio: "ignore" }).error === undefined;
}

/** Undefined (after a warning) when forkstat cannot run here: it is a cross-check, not a must. */
export async function startForkstat(outFile: string): Promise<Forkstat | undefined> {
  const fd = openSync(outFile, "w");
  const child = spawn("forkstat", ["-e", "fork,exec", "-l"], { stdio: ["ignore", fd, "inherit"] });
  closeSync(fd);
  const exited = once(child, "exit");
  // forkstat prints nothing until the first event; give it time to subscribe.
  await sleep(300);
  if (child.exitCode !== null) {
    console.error(`forkstat exited early with status ${child.exitCode}: no kernel-side exec count`);
    return undefined;
  }
  return {
    async stop() {
      child.kill("SIGINT");
      await exited;
    },
  };
}

export interface ExecCounts {
  /** Every exec in the namespace (watcher, shell helpers, launcher, probes). */
  namespaceExecs: number;
  /** Execs by children of the launcher: the probes, counted by the kernel. */
  probeExecs: number;
}

/**
 * Parses `forkstat -e fork,exec -l` output. A fork is two consecutive lines, the parent's
 * ("fork PID parent CMD") then the child's ("fork PID child CMD"); an exec is
 * "exec PID CMD". The CMD forkstat shows is read from /proc after the fact, so it is
 * used only to find the long-lived launcher.
 */
export function countExecs(text: string, rootPid: number, launcherPath: string): ExecCounts {
  const inNamespace = new Set([rootPid]);
  const parentOf = new Map<number, number>();
  const launchers = new Set<number>();
  const counts: ExecCounts = { namespaceExecs: 0, probeExecs: 0 };
  let forkParent: number | undefined;
  for (const line of text.split("\n")) {
    // "<time> <event> <pid> <fork role or exec's argv[0]> ..."
    const [, event, pidText, word] = line.trim().split(/\s+/);
    const pid = Number(pidText);
    if (event === "fork" && word === "parent") forkParent = pid;
    else if (event === "fork" && word === "child" && forkParent !== undefined) {
      parentOf.set(pid, forkParent);
      if (inNamespace.has(forkParent)) inNamespace.add(pid);
      forkParent = undefined;
    } else if (event === "exec" && inNamespace.has(pid)) {
      counts.namespaceExecs++;
      // A probe whose cmdline forkstat read too late shows the launcher's: parent first.
      if (launchers.has(parentOf.get(pid) ?? -1)) counts.probeExecs++;
      else if (word === launcherPath) launchers.add(pid);
    }
  }
  return counts;
}
