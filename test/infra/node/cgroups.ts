/**
 * Test helper: one cgroup path made, emptied and removed in every hierarchy of this
 * machine at once. Hybrid machines mount each v1 controller on its own (cpu, memory, pids,
 * ..., plus `unified`); a v2 machine has one hierarchy. The path is absolute from each
 * hierarchy's root, as the kubelet's cgroupRoot is with the cgroupfs driver.
 */
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Where each cgroup hierarchy is mounted (from /proc/self/mounts). */
export async function cgroupMounts(): Promise<string[]> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts
    .split("\n")
    .map((line) => line.split(" "))
    .filter((fields) => fields[2] === "cgroup" || fields[2] === "cgroup2")
    .map((fields) => fields[1]!);
}

/**
 * Makes `path` (e.g. /kube-node-x/runtime) in every hierarchy. A new cpuset cgroup has no
 * CPUs or memory nodes, and nothing can join it until it has: each level gets its parent's.
 */
export async function makeCgroup(path: string): Promise<void> {
  for (const mount of await cgroupMounts()) {
    let dir = mount;
    for (const part of path.split("/").filter(Boolean)) {
      const parent = dir;
      dir = join(dir, part);
      await mkdir(dir, { recursive: true });
      for (const file of ["cpuset.cpus", "cpuset.mems"]) {
        const own = await readFile(join(dir, file), "utf8").catch(() => undefined);
        if (own?.trim() === "") await writeFile(join(dir, file), await readFile(join(parent, file), "utf8"));
      }
    }
  }
}

/** The cgroup.procs files of `path` in every hierarchy (what a process writes its PID to, to join). */
export async function cgroupProcsFiles(path: string): Promise<string[]> {
  return (await cgroupMounts()).map((mount) => join(mount, path, "cgroup.procs"));
}

/** SIGKILLs every process in `path` and below, until none is left, then removes the cgroups. */
export async function removeCgroup(path: string, timeoutMillis = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  for (const mount of await cgroupMounts()) {
    const dirs = await subtree(join(mount, path));
    // Deepest first: a cgroup can only go once its children have.
    for (const dir of dirs.reverse()) {
      for (;;) {
        const pids = (await readFile(join(dir, "cgroup.procs"), "utf8").catch(() => "")).split("\n").filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // exited meanwhile
          }
        }
        const removed = await rmdir(dir).then(
          () => true,
          (error: NodeJS.ErrnoException) => error.code === "ENOENT",
        );
        if (removed) break;
        if (Date.now() > deadline) throw new Error(`cgroup ${dir} still busy after ${timeoutMillis} ms`);
        await sleep(50);
      }
    }
  }
}

/** `dir` and every cgroup below it, parents before children; none if it does not exist. */
async function subtree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (entries === undefined) return [];
  const children = await Promise.all(entries.filter((entry) => entry.isDirectory()).map((entry) => subtree(join(dir, entry.name))));
  return [dir, ...children.flat()];
}
