/**
 * The capture loop: finds processes as early as /proc allows and reports spawn, exec and
 * exit with (pid, starttime) identity. It runs on its own thread (see worker-entry.ts) so
 * that exporting records never delays a look at /proc.
 *
 * How processes are seen:
 * - the trigger: `/proc/sys/kernel/ns_last_pid` is the last PID the namespace allocated;
 *   when it moves, the PIDs in between are read directly (pspy rescans all of /proc
 *   instead, which costs far more per look and so must look less often);
 * - every known process is looked at again for an exec or its exit: every fastTickMs while
 *   young (fork comes before exec), then after half its age so far, at least every
 *   maxCheckIntervalMs, within a budget of looks per second. A child that still shows its
 *   parent's image is held back until it execs (one record, with the new program), exits,
 *   or outlives holdForkMs (a forked worker or subshell, reported as such);
 * - a /proc directory scan on a slower timer finds what the trigger cannot (PID wrap, a
 *   missing ns_last_pid) and the exits of processes not yet due for a look.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { defaultSamplerOptions, NetworkSampler, type SamplerOptions } from "../net/network-sampler.ts";
import { listPids, readExecFingerprint, readProcess, readStat, type ProcSnapshot } from "../proc/reader.ts";
import { CheckSchedule } from "./check-schedule.ts";
import type { CaptureEvent, Detection, SpawnImage } from "./events.ts";

/**
 * Events per message to the main thread, a network event counting its observations: the
 * main thread holds a message, deserialized, until it has handled all of it, so a burst of
 * 20 000 new sockets must not arrive as one.
 */
export const maxEventsPerPost = 256;

export interface CaptureOptions {
  procRoot: string;
  /** Trigger poll interval while PIDs are being allocated. */
  tickMs: number;
  /** Trigger poll interval after activeWindowMs without a new PID: waking costs CPU even when idle. */
  idleTickMs: number;
  activeWindowMs: number;
  /** Interval between two looks at one process while it is young. */
  fastTickMs: number;
  youngMs: number;
  /** Longest interval between two looks at one process, budget permitting. */
  maxCheckIntervalMs: number;
  /** Looks per second across all processes; past it, each process is looked at less often. */
  checkBudgetPerSecond: number;
  /** How long a fresh fork that still shows its parent's image is held back, waiting for its exec. */
  holdForkMs: number;
  rescanIntervalMs: number;
  gapReportIntervalMs: number;
  /** Scan interval when ns_last_pid is unavailable. */
  fallbackScanMs: number;
  /** The network sensor's timing and limits (see net/network-sampler.ts). */
  network: Omit<SamplerOptions, "procRoot">;
}

export const defaultCaptureOptions: CaptureOptions = {
  procRoot: "/proc",
  tickMs: 1,
  idleTickMs: 10,
  activeWindowMs: 2000,
  fastTickMs: 0.25,
  youngMs: 20,
  maxCheckIntervalMs: 100,
  checkBudgetPerSecond: 1000,
  holdForkMs: 20,
  rescanIntervalMs: 1000,
  gapReportIntervalMs: 10_000,
  fallbackScanMs: 10,
  network: defaultSamplerOptions,
};

interface Known {
  startTicks: number;
  fingerprint: string;
  /** When first seen; -Infinity for processes found by the startup scan (age unknown). */
  bornAt: number;
  /** Exit already reported (zombie awaiting its parent's wait()). */
  exited: boolean;
  /** Spawn not reported yet: a fresh fork that may be about to exec, for up to holdMs. */
  held?: { snapshot: ProcSnapshot; detection: Detection; observedAt: number; holdMs: number };
  /** A changed fingerprint that looked like an exec caught half-way, seen once. */
  suspect?: string;
}

/** How long runc's init may take to set up a container before it execs the command. */
const runtimeInitHoldMs = 1000;

/** PIDs wrap to this value after reaching pid_max (kernel RESERVED_PIDS). */
const reservedPids = 300;
/** More PIDs than this between two ticks across pid_max is not a wrap (see setBack()). */
const maxWrapPids = 65_536;

export class CaptureLoop {
  private readonly known = new Map<number, Known>();
  private readonly schedule = new CheckSchedule();
  private readonly triggerFd: number | undefined;
  private readonly triggerBuf = Buffer.alloc(32);
  private readonly pidMax: number;
  private readonly options: CaptureOptions;
  private lastPid = 0;
  private lastActivity = 0;
  private lastRescan = 0;
  private gap = { count: 0, firstPid: 0, lastPid: 0, since: 0 };
  /** Kernel threads found by a scan: not read again by the next ones (a host has a hundred). */
  private readonly kernelThreads = new Set<number>();
  private events: CaptureEvent[] = [];
  private network: NetworkSampler | undefined;
  private networkWanted = false;

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
    const base = now - this.lastActivity < this.options.activeWindowMs ? this.options.tickMs : this.options.idleTickMs;
    const networkDue = (this.network?.nextDueAt() ?? Infinity) - now;
    return Math.max(this.options.fastTickMs, Math.min(base, this.schedule.peek() - now, networkDue));
  }

  /** Turns the network sensor on or off (the policy wants network records or controls). */
  setNetwork(on: boolean): void {
    if (on === this.networkWanted) return;
    this.networkWanted = on;
    if (!on) {
      this.network?.close();
      this.network = undefined;
      return;
    }
    try {
      this.network = new NetworkSampler({ ...this.options.network, procRoot: this.options.procRoot });
    } catch (err) {
      this.events.push({ type: "error", message: `network sensor unavailable: ${(err as Error).message}` });
    }
  }

  /** The first look: every process already running, reported as `startup`. */
  start(now: number): CaptureEvent[] {
    this.gap.since = now;
    this.rescan(now, "startup");
    // In start order, so parents precede children and a container's init its exec sessions.
    const order = (e: CaptureEvent): number =>
      e.type === "spawn" ? e.snapshot.startTicks : e.type === "exit" ? e.startTicks + 0.5 : -1;
    const processes = this.drain().sort((x, y) => order(x) - order(y));
    this.sampleNetwork(now, "nudge");
    return [...processes, ...this.drain()];
  }

  tick(now: number): CaptureEvent[] {
    try {
      if (this.triggerFd !== undefined) {
        const current = this.readTrigger();
        if (current !== this.lastPid) {
          if (this.setBack(this.lastPid, current)) this.rescan(now, "rescan");
          else for (const pid of this.allocatedSince(this.lastPid, current)) this.visit(pid, "trigger", now);
          this.lastPid = current;
          this.lastActivity = now;
        }
      }
      // Before the checks that may find owners' exits: a connection's record comes first.
      this.sampleNetwork(now, this.lastActivity === now ? "nudge" : "timer");
      this.runDueChecks(now);
      const rescanEvery = this.triggerFd === undefined ? this.options.fallbackScanMs : this.options.rescanIntervalMs;
      if (now - this.lastRescan >= rescanEvery) this.rescan(now, "rescan");
      if (now - this.gap.since >= this.options.gapReportIntervalMs) this.queueGap(now);
    } catch (err) {
      this.events.push({ type: "error", message: (err as Error).message });
    }
    return this.drain();
  }

  /** The last look before stopping: every exit and exec not yet seen, and the gap count. */
  finish(now: number): CaptureEvent[] {
    this.rescan(now, "rescan");
    this.sampleNetwork(now, "final");
    for (const [pid, known] of [...this.known]) if (!known.exited) this.check(pid, known, now);
    this.queueGap(now);
    return this.drain();
  }

  close(): void {
    if (this.triggerFd !== undefined) closeSync(this.triggerFd);
    this.network?.close();
  }

  /** Polls the network sensor when due, early when new processes appeared, and a last time. */
  private sampleNetwork(now: number, reason: "timer" | "nudge" | "final"): void {
    if (this.network === undefined) return;
    const sample = this.network.poll(now, () => this.liveProcesses(), reason);
    if (sample === undefined || (sample.observations.length === 0 && sample.problems.length === 0 && sample.malformed === 0)) return;
    // An owner may have exec'd since its last look: report that first, so the connection
    // names the program that made it.
    for (const { owner } of sample.observations) {
      const known = owner === undefined ? undefined : this.known.get(owner.pid);
      if (known === undefined || known.exited || known.startTicks !== owner!.startTicks) continue;
      const fingerprint = readExecFingerprint(owner!.pid, this.options.procRoot);
      if (fingerprint !== undefined && fingerprint !== known.fingerprint) this.reread(owner!.pid, known, now);
    }
    // In slices, each posted on its own (see worker-entry.ts).
    for (let i = 0; i === 0 || i < sample.observations.length; i += maxEventsPerPost) {
      const observations = sample.observations.slice(i, i + maxEventsPerPost);
      this.events.push({ type: "network", sample: i === 0 ? { ...sample, observations } : { observations, problems: [], malformed: 0 }, observedAt: now });
    }
  }

  /** Processes that may own sockets: every known one that has not exited. */
  private *liveProcesses(): Generator<{ pid: number; startTicks: number }> {
    for (const [pid, known] of this.known) if (!known.exited) yield { pid, startTicks: known.startTicks };
  }

  private queueGap(now: number): void {
    const { count, firstPid, lastPid, since } = this.gap;
    if (count > 0) this.events.push({ type: "gap", kind: "pid", count, firstPid, lastPid, since, until: now });
    const tcp = this.network?.takeTcpGap() ?? 0;
    if (tcp > 0) this.events.push({ type: "gap", kind: "tcp", count: tcp, since, until: now });
    this.gap = { count: 0, firstPid: 0, lastPid: 0, since: now };
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

  /**
   * ns_last_pid went back further than a wrap at pid_max explains: root wrote it (as
   * checkpoint/restore tools do). Walking "the wrap" would visit millions of PIDs, so the
   * loop rescans /proc instead; PIDs that lived and died meanwhile are not counted.
   */
  private setBack(last: number, current: number): boolean {
    return current < last && this.pidMax - last + Math.max(0, current - reservedPids) > maxWrapPids;
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
    if (result.kind === "kernel-thread") this.kernelThreads.add(pid);
    if (result.kind !== "process") return;
    this.kernelThreads.delete(pid);
    const snapshot = result.snapshot;
    const previous = this.known.get(pid);
    if (previous !== undefined) {
      if (previous.startTicks === snapshot.startTicks) return;
      this.exit(pid, previous, now);
    }
    const known: Known = {
      startTicks: snapshot.startTicks,
      fingerprint: snapshot.fingerprint,
      bornAt: detection === "startup" ? -Infinity : now,
      exited: false,
    };
    this.known.set(pid, known);
    // A held parent that forks has either exec'd meanwhile or runs code of its own (a
    // subshell): find out which, and report it before its child.
    const parent = this.known.get(snapshot.ppid);
    if (parent?.held !== undefined) {
      const fingerprint = readExecFingerprint(snapshot.ppid, this.options.procRoot);
      if (fingerprint !== undefined && fingerprint !== parent.fingerprint) this.reread(snapshot.ppid, parent, now);
      this.release(parent, "fork-only");
    }
    const dead = isDead(snapshot);
    // Still the parent's argv (its image, or an exec caught between reading argv and exe), or
    // caught inside execve before argv is set up: wait for the exec to finish.
    const unfinished = (parent !== undefined && argvOf(snapshot.fingerprint) === argvOf(parent.fingerprint)) || snapshot.args?.length === 0;
    // An exec session (`kubectl exec`, `podman exec`) enters the namespace as runc's own init,
    // as root and often still in the runtime's cgroup, and becomes the user's command only
    // when runc has set the container up: what it is and whose it is is known after that exec.
    const runtimeInit = snapshot.ppid === 0 && snapshot.comm.startsWith("runc:[");
    if (detection === "trigger" && !dead && (unfinished || runtimeInit)) {
      known.held = { snapshot, detection, observedAt: now, holdMs: runtimeInit ? runtimeInitHoldMs : this.options.holdForkMs };
    } else {
      this.events.push({ type: "spawn", snapshot, detection, observedAt: now, image: "exec" });
    }
    if (dead) this.exit(pid, known, now);
    else this.scheduleCheck(pid, known, now);
  }

  private scheduleCheck(pid: number, known: Known, now: number): void {
    const { fastTickMs, youngMs, maxCheckIntervalMs, checkBudgetPerSecond } = this.options;
    const age = now - known.bornAt;
    // The budget spreads looks at older processes only: a fresh fork, or a process held
    // back until its exec, needs its fast looks whatever else the pod holds.
    const interval =
      age < youngMs || known.held !== undefined ? fastTickMs : Math.max(fastTickMs, Math.min(age / 2, maxCheckIntervalMs), (this.known.size / checkBudgetPerSecond) * 1000);
    this.schedule.push({ at: now + interval, pid, startTicks: known.startTicks });
  }

  private runDueChecks(now: number): void {
    for (let check = this.schedule.popDue(now); check !== undefined; check = this.schedule.popDue(now)) {
      const known = this.known.get(check.pid);
      if (known === undefined || known.startTicks !== check.startTicks || known.exited) continue;
      this.check(check.pid, known, now);
      if (this.known.get(check.pid) === known && !known.exited) this.scheduleCheck(check.pid, known, now);
    }
  }

  /** One look at a known process for an exec or its exit. */
  private check(pid: number, known: Known, now: number): void {
    if (known.held !== undefined && now - known.bornAt > known.held.holdMs) this.release(known, "fork-only");
    const fingerprint = readExecFingerprint(pid, this.options.procRoot);
    if (fingerprint === undefined) this.exit(pid, known, now);
    else if (fingerprint !== known.fingerprint) this.reread(pid, known, now);
  }

  /** Reports a held process as last seen, saying what we know of its image. */
  private release(known: Known, image: SpawnImage): void {
    if (known.held === undefined) return;
    const { snapshot, detection, observedAt } = known.held;
    this.events.push({ type: "spawn", snapshot, detection, observedAt, image });
    delete known.held;
  }

  /** Something changed in a known PID: an exec, a death, or a new process on a reused PID. */
  private reread(pid: number, known: Known, now: number): void {
    // A root held because it was caught inside execve had an empty environ then: read it now.
    const unattributed = known.held !== undefined && known.held.snapshot.container === undefined;
    const result = readProcess(pid, { attribution: (ppid) => unattributed && (ppid <= 1 || !this.known.has(ppid)) }, this.options.procRoot);
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
    // Inside execve: the new image has no argv yet. Look again at the next check.
    if (snapshot.args?.length === 0) return;
    // A new exe with the old argv is most likely an exec caught between our two reads:
    // believe it only when the next look says the same.
    if (argvOf(snapshot.fingerprint) === argvOf(known.fingerprint) && known.suspect !== snapshot.fingerprint) {
      known.suspect = snapshot.fingerprint;
      return;
    }
    delete known.suspect;
    known.fingerprint = snapshot.fingerprint;
    if (known.held !== undefined) {
      // The fork we held back has exec'd: one spawn record, with the program it runs now.
      snapshot.container ??= known.held.snapshot.container;
      snapshot.containerId ??= known.held.snapshot.containerId;
      this.events.push({ type: "spawn", snapshot, detection: known.held.detection, observedAt: now, image: "exec" });
      delete known.held;
    } else {
      this.events.push({ type: "exec", snapshot, observedAt: now });
    }
  }

  private rescan(now: number, detection: Detection): void {
    this.lastRescan = now;
    const live = new Set(listPids(this.options.procRoot));
    for (const [pid, known] of this.known) {
      if (!live.has(pid)) this.exit(pid, known, now);
    }
    for (const pid of this.kernelThreads) if (!live.has(pid)) this.kernelThreads.delete(pid);
    for (const pid of live) {
      if (!this.known.has(pid) && !this.kernelThreads.has(pid)) this.visit(pid, detection, now);
    }
  }

  private exit(pid: number, known: Known, now: number): void {
    this.release(known, "exec-unseen");
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

/** The argv part of a fingerprint (exe link, NUL, raw argv). */
function argvOf(fingerprint: string): string {
  return fingerprint.slice(fingerprint.indexOf("\0"));
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
