/**
 * A /proc tree in a temporary directory, written the way the kernel formats it, for unit
 * tests of what reads /proc (the capture loop, the reader): processes appear, fork, exec,
 * become zombies and go, and ns_last_pid moves as the kernel would move it.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeProcess {
  pid: number;
  ppid: number;
  comm: string;
  startTicks: number;
  /** Target of /proc/PID/exe; none: unreadable like a kernel thread's. */
  exe?: string;
  args: string[];
  state?: string;
  uid?: number;
  /** MICROENFORCER_CONTAINER in its environ. */
  container?: string;
  /** PF_KTHREAD set in its stat flags. */
  kernelThread?: boolean;
}

export class FakeProc {
  readonly root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  private readonly processes = new Map<number, FakeProcess>();

  constructor(options: { lastPid?: number; pidMax?: number; trigger?: boolean } = {}) {
    mkdirSync(join(this.root, "sys/kernel"), { recursive: true });
    if (options.trigger !== false) this.setLastPid(options.lastPid ?? 1);
    writeFileSync(join(this.root, "sys/kernel/pid_max"), `${options.pidMax ?? 4_194_304}\n`);
  }

  /** Writes the process's entry; ns_last_pid moves to its PID when `allocate` (a new PID). */
  add(p: FakeProcess, allocate = true): FakeProcess {
    this.processes.set(p.pid, p);
    const dir = join(this.root, String(p.pid));
    mkdirSync(dir, { recursive: true });
    this.write(p);
    writeFileSync(join(dir, "environ"), p.container === undefined ? "PATH=/bin\0" : `PATH=/bin\0MICROENFORCER_CONTAINER=${p.container}\0`);
    writeFileSync(join(dir, "cgroup"), "0::/\n");
    if (allocate) this.setLastPid(p.pid);
    return p;
  }

  /** A child that still runs its parent's image, as fork leaves it. */
  fork(parentPid: number, pid: number, startTicks: number): FakeProcess {
    const parent = this.processes.get(parentPid)!;
    return this.add({ ...parent, pid, ppid: parentPid, startTicks });
  }

  exec(pid: number, exe: string, args: string[]): void {
    const p = this.processes.get(pid)!;
    Object.assign(p, { exe, args, comm: exe.split("/").pop()!.slice(0, 15) });
    this.write(p);
  }

  zombie(pid: number): void {
    const p = this.processes.get(pid)!;
    Object.assign(p, { state: "Z", args: [] });
    delete p.exe;
    this.write(p);
  }

  /** Reaped: its /proc entry is gone. */
  remove(pid: number): void {
    this.processes.delete(pid);
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }

  setLastPid(pid: number): void {
    writeFileSync(join(this.root, "sys/kernel/ns_last_pid"), `${pid}\n`);
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private write(p: FakeProcess): void {
    const dir = join(this.root, String(p.pid));
    const uid = p.uid ?? 1000;
    const flags = p.kernelThread ? 0x00208040 : 0x00400100;
    writeFileSync(join(dir, "stat"), `${p.pid} (${p.comm}) ${p.state ?? "S"} ${p.ppid} ${p.pid} ${p.pid} 0 -1 ${flags} 119 0 0 0 0 0 0 0 20 0 1 0 ${p.startTicks} 3133440 393 0\n`);
    writeFileSync(join(dir, "status"), `Name:\t${p.comm}\nState:\t${p.state ?? "S"}\nTgid:\t${p.pid}\nPid:\t${p.pid}\nPPid:\t${p.ppid}\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\n`);
    writeFileSync(join(dir, "cmdline"), p.args.length === 0 ? "" : `${p.args.join("\0")}\0`);
    try {
      unlinkSync(join(dir, "exe"));
    } catch {
      // first write
    }
    if (p.exe !== undefined) symlinkSync(p.exe, join(dir, "exe"));
  }
}
