/**
 * The capture loop: finds processes as early as /proc allows and reports spawn, exec and
 * exit with (pid, starttime) identity. It runs on its own thread (see worker-entry.ts) so
 * that exporting records never delays a look at /proc.
 *
 * Three ways to see a process, cheapest first:
 * - the trigger: `/proc/sys/kernel/ns_last_pid` is the last PID the namespace allocated;
 *   when it moves, the PIDs in between are read directly (pspy polls the whole of /proc
 *   instead, which costs far more per look and so must look less often);
 * - young PIDs are re-read for a few ms after birth, because fork comes before exec;
 * - a full /proc scan on a slower timer catches what the trigger cannot (PID wrap,
 *   exec in place in an old process, a missing ns_last_pid).
 */
import { closeSync, openSync, readSync } from "node:fs";
import {
  listPids,
  readExecFingerprint,
  readProcess,
  readStat,
  type ProcSnapshot,
} from "../proc/reader.ts";

export type Detection = "trigger" | "rescan" | "startup";

export type CaptureEvent =
  | { type: "spawn"; snapshot: ProcSnapshot; detection: Detection; observedAt: number }
  | { type: "exec"; snapshot: ProcSnapshot; observedAt: number }
  | { type: "exit"; pid: number; startTicks: number; observedAt: number }
  | { type: "gap"; count: number; firstPid: number; lastPid: number; since: number; until: number }
  | { type: "trigger"; mode: "ns_last_pid" | "scan"; reason?: string }
  | { type: "error"; message: string };

export interface CaptureOptions {
  procRoot: string;
  /** Trigger poll interval while PIDs are being allocated. */
  tickMs: number;
  /** Trigger poll interval after activeWindowMs without a new PID: waking costs CPU even when idle. */
  idleTickMs: number;
  activeWindowMs: number;
  /** Poll interval while young PIDs are re-read for their exec. */
  fastTickMs: number;
  /** How long after birth a PID is re-read for an exec. */
  youngWindowMs: number;
  rescanIntervalMs: number;
  gapReportIntervalMs: number;
  /** Scan interval when ns_last_pid is unavailable. */
  fallbackScanMs: number;
}

export const defaultCaptureOptions: CaptureOptions = {
  procRoot: "/proc",
  tickMs: 1,
  idleTickMs: 10,
  activeWindowMs: 2000,
  fastTickMs: 0.25,
  youngWindowMs: 20,
  rescanIntervalMs: 1000,
  gapReportIntervalMs: 10_000,
  fallbackScanMs: 10,
};

interface Known {
  startTicks: number;
  comm: string;
  fingerprint: string;
  bornAt: number;
  /** Exit already reported (zombie awaiting its parent's wait()). */
  exited: boolean;
}

/** PIDs wrap to this value after reaching pid_max (kernel RESERVED_PIDS). */
const reservedPids = 300;

export class CaptureLoop {
  private readonly known = new Map<number, Known>();
  private readonly young = new Set<number>();
  private readonly triggerFd: number | undefined;
  private readonly triggerBuf = Buffer.alloc(32);
  private readonly pidMax: number;
  private lastPid = 0;
  private lastActivity = 0;
  private lastRescan = 0;
  private gap = { count: 0, firstPid: 0, lastPid: 0, since: 0 };
  private events: CaptureEvent[] = [];
  private readonly options: CaptureOptions;

  constructor(options: CaptureOptions) {
    this.options = options;
    const root = options.procRoot;
    try {
      this.triggerFd = openSync(`${root}/sys/kernel/ns_last_pid`, "r");
      this.lastPid = this.readTrigger();
      this.events.push({ type: "trigger", mode: "ns_last_pid" });
    } catch (err) {
      this.triggerFd = undefined;
      const reason = `${root}/sys/kernel/ns_last_pid unavailable (${(err as Error).message}); kernel built without CONFIG_CHECKPOINT_RESTORE?`;
      this.events.push({ type: "trigger", mode: "scan", reason });
    }
    try {
      this.pidMax = Number(readProcFirstLine(`${root}/sys/kernel/pid_max`)) || 4_194_304;
    } catch {
      this.pidMax = 4_194_304;
    }
  }

  /** Delay until the next tick should run. */
  nextDelayMs(now: number): number {
    if (this.triggerFd === undefined) return this.options.fallbackScanMs;
    if (this.young.size > 0) return this.options.fastTickMs;
    return now - this.lastActivity < this.options.activeWindowMs ? this.options.tickMs : this.options.idleTickMs;
  }

  /** The first look: every process already running, reported as `startup`. */
  start(now: number): CaptureEvent[] {
    this.gap.since = now;
    this.rescan(now, "startup");
    // In start order, so parents precede children and a container's init its exec sessions.
    const order = (e: CaptureEvent): number =>
      e.type === "spawn" ? e.snapshot.startTicks : e.type === "exit" ? e.startTicks + 0.5 : -1;
    return this.drain().sort((x, y) => order(x) - order(y));
  }

  tick(now: number): CaptureEvent[] {
    try {
      if (this.triggerFd !== undefined) {
        const current = this.readTrigger();
        if (current !== this.lastPid) {
          for (const pid of this.allocatedSince(this.lastPid, current)) this.visit(pid, "trigger", now);
          this.lastPid = current;
          this.lastActivity = now;
        }
      }
      this.rereadYoung(now);
      const rescanEvery = this.triggerFd === undefined ? this.options.fallbackScanMs : this.options.rescanIntervalMs;
      if (now - this.lastRescan >= rescanEvery) this.rescan(now, "rescan");
      if (now - this.gap.since >= this.options.gapReportIntervalMs) this.flushGap(now);
    } catch (err) {
      this.events.push({ type: "error", message: (err as Error).message });
    }
    return this.drain();
  }

  /** Reports the gap counted so far (also at shutdown). */
  flushGap(now: number): CaptureEvent[] {
    if (this.gap.count > 0) {
      const { count, firstPid, lastPid, since } = this.gap;
      this.events.push({ type: "gap", count, firstPid, lastPid, since, until: now });
    }
    this.gap = { count: 0, firstPid: 0, lastPid: 0, since: now };
    return this.drain();
  }

  close(): void {
    if (this.triggerFd !== undefined) closeSync(this.triggerFd);
  }

  private drain(): CaptureEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  private readTrigger(): number {
    const n = readSync(this.triggerFd!, this.triggerBuf, 0, this.triggerBuf.length, 0);
    return Number(this.triggerBuf.toString("latin1", 0, n).trim());
  }

  /** PIDs handed out after `last` up to `current`, across a wrap at pid_max. */
  private *allocatedSince(last: number, current: number): Generator<number> {
    if (current > last) {
      for (let pid = last + 1; pid <= current; pid++) yield pid;
      return;
    }
    for (let pid = last + 1; pid < this.pidMax; pid++) yield pid;
    for (let pid = Math.min(reservedPids, current); pid <= current; pid++) yield pid;
  }

  private visit(pid: number, detection: Detection, now: number): void {
    // Roots (PPID 0), orphans adopted by PID 1 and children of unseen parents carry their own
    // attribution; everyone else inherits it from a parent we already know.
    const attribution = (ppid: number): boolean => ppid <= 1 || !this.known.has(ppid);
    const result = readProcess(pid, { attribution }, this.options.procRoot);
    if (result.kind === "gone") {
      if (detection === "trigger") this.countGap(pid);
      return;
    }
    if (result.kind === "thread") return;
    const snapshot = result.snapshot;
    const previous = this.known.get(pid);
    if (previous !== undefined) {
      if (previous.startTicks === snapshot.startTicks) return;
      this.exit(pid, previous, now);
    }
    const known: Known = {
      startTicks: snapshot.startTicks,
      comm: snapshot.comm,
      fingerprint: snapshot.fingerprint,
      bornAt: now,
      exited: false,
    };
    this.known.set(pid, known);
    this.events.push({ type: "spawn", snapshot, detection, observedAt: now });
    if (isDead(snapshot)) this.exit(pid, known, now);
    else if (detection !== "startup") this.young.add(pid);
  }

  private rereadYoung(now: number): void {
    for (const pid of this.young) {
      const known = this.known.get(pid);
      if (known === undefined || known.exited || now - known.bornAt > this.options.youngWindowMs) {
        this.young.delete(pid);
        continue;
      }
      const fingerprint = readExecFingerprint(pid, this.options.procRoot);
      if (fingerprint === undefined) this.exit(pid, known, now);
      else if (fingerprint !== known.fingerprint) this.reread(pid, known, now);
    }
  }

  /** Something changed in a known PID: an exec, a death, or a new process on a reused PID. */
  private reread(pid: number, known: Known, now: number): void {
    const result = readProcess(pid, { attribution: () => false }, this.options.procRoot);
    if (result.kind !== "process") {
      this.exit(pid, known, now);
      return;
    }
    const snapshot = result.snapshot;
    if (snapshot.startTicks !== known.startTicks) {
      this.exit(pid, known, now);
      this.visit(pid, "rescan", now);
      return;
    }
    if (isDead(snapshot)) {
      this.exit(pid, known, now);
      return;
    }
    known.comm = snapshot.comm;
    known.fingerprint = snapshot.fingerprint;
    this.events.push({ type: "exec", snapshot, observedAt: now });
  }

  private rescan(now: number, detection: Detection): void {
    this.lastRescan = now;
    const live = new Set(listPids(this.options.procRoot));
    for (const [pid, known] of this.known) {
      if (!live.has(pid)) this.exit(pid, known, now);
    }
    for (const pid of live) {
      const known = this.known.get(pid);
      if (known === undefined) {
        this.visit(pid, detection, now);
        continue;
      }
      if (known.exited) continue;
      const stat = readStat(pid, this.options.procRoot);
      if (stat === undefined) this.exit(pid, known, now);
      else if (stat.startTicks !== known.startTicks || stat.comm !== known.comm || stat.state === "Z") {
        this.reread(pid, known, now);
      }
    }
  }

  private exit(pid: number, known: Known, now: number): void {
    this.young.delete(pid);
    if (!known.exited) this.events.push({ type: "exit", pid, startTicks: known.startTicks, observedAt: now });
    known.exited = true;
    // A zombie keeps its PID until reaped; forget it only once /proc agrees.
    if (readStat(pid, this.options.procRoot)?.startTicks !== known.startTicks) this.known.delete(pid);
  }

  private countGap(pid: number): void {
    if (this.gap.count === 0) this.gap.firstPid = pid;
    this.gap.lastPid = pid;
    this.gap.count++;
  }
}

function isDead(snapshot: ProcSnapshot): boolean {
  return snapshot.state === "Z" || snapshot.state === "X";
}

function readProcFirstLine(path: string): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(64);
    return buf.toString("latin1", 0, readSync(fd, buf, 0, 64, 0)).trim();
  } finally {
    closeSync(fd);
  }
}
