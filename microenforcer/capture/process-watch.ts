/**
 * What the capture worker knows of each process it has seen, and the looks that keep it
 * current: a process is read when it appears, then looked at again for an exec or its exit
 * every fastTickMs while young (fork comes before exec), then after half its age so far, at
 * least every maxCheckIntervalMs, within a budget of looks per second. A child that still
 * shows its parent's image is held back until it execs (one spawn event, with the new
 * program), exits, or outlives holdForkMs (a forked worker or subshell, reported as such);
 * a fresh exec whose executable is refused is held as long, for the credentials execve
 * commits after showing the new argv. An exe link that only appears or vanishes under the
 * same argv is a change of credentials, not an exec.
 *
 * This is the worker's own state of each PID (fingerprint, hold, next look), not the process
 * facts the main thread's tracker keeps: the two threads share no memory but the events.
 */
import type { Owner } from "../net/inode-owners.ts";
import { argvOf, listPids, readExecFingerprint, readProcess, readStat, sameImage, type ProcSnapshot } from "../proc/reader.ts";
import { CheckSchedule } from "./check-schedule.ts";
import type { CaptureEvent, Detection, SpawnImage } from "./events.ts";

export interface WatchTiming {
  /** Interval between two looks at one process while it is young. */
  fastTickMs: number;
  youngMs: number;
  /** Longest interval between two looks at one process, budget permitting. */
  maxCheckIntervalMs: number;
  /** Looks per second across all processes; past it, each process is looked at less often. */
  checkBudgetPerSecond: number;
  /** How long a fresh fork that still shows its parent's image is held back, waiting for its exec. */
  holdForkMs: number;
}

/**
 * What the loop reads ahead of a process it reads out of turn (newest first, see PidBacklog),
 * when the process's report depends on it: a child is held while it shows its parent's image
 * and inherits its exec session; a root (its parent outside the namespace) is a container's
 * init only if no root of its container came before it, else an exec session.
 */
export interface ReadAhead {
  /** The parent, when it was handed out and has not been read yet. */
  parent(ppid: number, now: number): void;
  /** For a root: every PID handed out before it and not read yet (roots are the runtime's, and rare). */
  before(now: number): void;
}

interface Watched {
  startTicks: number;
  fingerprint: string;
  /** When first seen; -Infinity for processes found by the startup scan (age unknown). */
  bornAt: number;
  /** Exit already reported (zombie awaiting its parent's wait()). */
  exited: boolean;
  /**
   * Spawn not reported yet: a fresh fork that may be about to exec, or a fresh exec whose
   * executable may not be read yet, for up to holdMs; then reported as `expiresAs`.
   */
  held?: { snapshot: ProcSnapshot; detection: Detection; observedAt: number; holdMs: number; expiresAs: SpawnImage };
  /** A changed fingerprint that looked like an exec caught half-way, seen once. */
  suspect?: string;
}

/** runc's own init, setting up a container or an exec session before it execs the command. */
export function isRuntimeInit(snapshot: Pick<ProcSnapshot, "ppid" | "comm">): boolean {
  return snapshot.ppid === 0 && snapshot.comm.startsWith("runc:[");
}

/** How long runc's init may take to set up a container before it execs the command. */
const runtimeInitHoldMs = 1000;

export class ProcessWatch {
  private readonly watched = new Map<number, Watched>();
  private readonly schedule = new CheckSchedule();
  /** Kernel threads found by a scan: not read again by the next ones (a host has a hundred). */
  private readonly kernelThreads = new Set<number>();
  private readonly procRoot: string;
  private readonly timing: WatchTiming;
  private readonly report: (event: CaptureEvent) => void;
  /** The sensor itself: watched (it owns sockets), never looked at for an exec or exit of its own. */
  private readonly selfPid: number | undefined;
  private readonly readAhead: ReadAhead | undefined;
  /** Read where interpreters' stdio goes at each full read (ReadOptions.stdio). */
  readStdio = false;
  /** WatchTiming.maxCheckIntervalMs, or what the loop sets instead (longer while the library reports). */
  maxCheckIntervalMs: number;

  /** `report` receives spawn, exec and exit events in the order they are found. */
  constructor(procRoot: string, timing: WatchTiming, report: (event: CaptureEvent) => void, selfPid?: number, readAhead?: ReadAhead) {
    this.procRoot = procRoot;
    this.timing = timing;
    this.maxCheckIntervalMs = timing.maxCheckIntervalMs;
    this.report = report;
    this.selfPid = selfPid;
    this.readAhead = readAhead;
  }

  /** When the next look is due (Infinity: none). */
  nextCheckAt(): number {
    return this.schedule.peek();
  }

  /** Processes that may own sockets: every one seen that has not exited. */
  *live(): Generator<Owner> {
    for (const [pid, w] of this.watched) if (!w.exited) yield { pid, startTicks: w.startTicks };
  }

  /**
   * Reads a PID that appeared (`trigger`, `rescan`) or was there at start (`startup`).
   * Returns false when no such PID exists (it lived and died before this look).
   */
  visit(pid: number, detection: Detection, now: number): boolean {
    // Roots (PPID 0), orphans adopted by PID 1 and children of unseen parents carry their own
    // attribution; everyone else inherits it from a parent we already know.
    const attribution = (ppid: number): boolean => ppid <= 1 || !this.watched.has(ppid);
    const result = readProcess(pid, { attribution, stdio: this.readStdio }, this.procRoot);
    if (result.kind === "gone") return false;
    if (result.kind === "kernel-thread") this.kernelThreads.add(pid);
    if (result.kind !== "process") return true;
    this.kernelThreads.delete(pid);
    const snapshot = result.snapshot;
    if (snapshot.ppid === 0) this.readAhead?.before(now);
    else if (!this.watched.has(snapshot.ppid)) this.readAhead?.parent(snapshot.ppid, now);
    const previous = this.watched.get(pid);
    if (previous !== undefined) {
      if (previous.startTicks === snapshot.startTicks) return true;
      this.exit(pid, previous, now);
    }
    const w: Watched = {
      startTicks: snapshot.startTicks,
      // A look across an exec does not tell the image: the next look rereads whatever it sees.
      fingerprint: snapshot.execving ? "" : snapshot.fingerprint,
      bornAt: detection === "startup" ? -Infinity : now,
      exited: false,
    };
    this.watched.set(pid, w);
    // A parent that forks may have exec'd since its last look, which for an old process is
    // long ago (a subshell exec'ing its last command in place, a script that runs for 50 ms):
    // find out, and report it before its child. A held one runs code of its own otherwise.
    const parent = this.watched.get(snapshot.ppid);
    if (parent !== undefined && !parent.exited) this.catchUpExec(snapshot.ppid, parent, now);
    if (parent?.held !== undefined) this.release(parent, "fork-only");
    const dead = isDead(snapshot);
    // Still the parent's argv (its image, or an exec caught between reading argv and exe), or
    // caught inside execve: wait for the exec to finish.
    const unfinished = (parent !== undefined && argvOf(snapshot.fingerprint) === argvOf(parent.fingerprint)) || insideExecve(snapshot);
    // An exec session (`kubectl exec`, `podman exec`) enters the namespace as runc's own init,
    // as root and often still in the runtime's cgroup, and becomes the user's command only
    // when runc has set the container up: what it is and whose it is is known after that exec.
    const runtimeInit = isRuntimeInit(snapshot);
    // execve makes the new argv visible before it commits the new credentials: an exe refused
    // right after an exec may be readable a moment later (or never: another user's process).
    const exeRefused = snapshot.exe === undefined && snapshot.problems.some((p) => p.file === "exe");
    // Found by a rescan (the trigger missed it, or there is none) just the same: reported as
    // an exec, a fork would be taken for its parent's program run again, which in complete
    // mode waits for a report that never comes. Only what ran before the sensor is taken as seen.
    if (detection !== "startup" && !dead && (unfinished || runtimeInit || exeRefused)) {
      const holdMs = runtimeInit ? runtimeInitHoldMs : this.timing.holdForkMs;
      w.held = { snapshot, detection, observedAt: now, holdMs, expiresAs: unfinished || runtimeInit ? "fork-only" : "exec" };
    } else {
      this.report({ type: "spawn", snapshot, detection, observedAt: now, image: "exec" });
    }
    if (dead) this.exit(pid, w, now);
    else this.scheduleCheck(pid, w, now);
    return true;
  }

  /** Every PID in /proc: exits of those gone, visits of those not seen yet but for `skip`'s, while `more` says so. */
  rescan(now: number, detection: Detection, more: () => boolean = always, skip: (pid: number) => boolean = never): void {
    const live = new Set(listPids(this.procRoot));
    for (const [pid, w] of this.watched) {
      if (!live.has(pid)) this.exit(pid, w, now);
    }
    for (const pid of this.kernelThreads) if (!live.has(pid)) this.kernelThreads.delete(pid);
    for (const pid of live) {
      if (this.watched.has(pid) || this.kernelThreads.has(pid) || skip(pid)) continue;
      if (!more()) return;
      this.visit(pid, detection, now);
    }
  }

  /** The looks that are due, while `more` says so (the rest stay due). */
  runDueChecks(now: number, more: () => boolean = always): void {
    while (more()) {
      const check = this.schedule.popDue(now);
      if (check === undefined) return;
      const w = this.watched.get(check.pid);
      if (w === undefined || w.startTicks !== check.startTicks || w.exited) continue;
      this.check(check.pid, w, now);
      if (this.watched.get(check.pid) === w && !w.exited) this.scheduleCheck(check.pid, w, now);
    }
  }

  /**
   * The preload library reported (pid, startTicks) running the image `fingerprint`, and the
   * main thread recorded it: look after it from now on (its next exec, its exit) without
   * reporting its spawn again. Returns false when it is gone already (its exit is reported).
   */
  adopt(pid: number, startTicks: number, fingerprint: string, now: number): boolean {
    const w = this.watched.get(pid);
    if (w?.startTicks === startTicks) {
      // Held back waiting for its exec: the report says what it runs. Otherwise this watch
      // reported what it saw last, and the main thread drops it if the report had it first.
      if (w.held !== undefined) {
        delete w.held;
        delete w.suspect;
        w.fingerprint = fingerprint;
      }
      return true;
    }
    if (w !== undefined && w.startTicks > startTicks) {
      this.report({ type: "exit", pid, startTicks, observedAt: now });
      return false;
    }
    if (w !== undefined) this.exit(pid, w, now);
    const stat = readStat(pid, this.procRoot);
    if (stat?.startTicks !== startTicks) {
      this.report({ type: "exit", pid, startTicks, observedAt: now });
      return false;
    }
    const adopted: Watched = { startTicks, fingerprint, bornAt: now, exited: false };
    this.watched.set(pid, adopted);
    if (stat.state === "Z" || stat.state === "X") this.exit(pid, adopted, now);
    else this.scheduleCheck(pid, adopted, now);
    return true;
  }

  /** A look at every process not known to have exited (the last one, before stopping). */
  checkAll(now: number): void {
    for (const [pid, w] of [...this.watched]) if (!w.exited) this.check(pid, w, now);
  }

  /** A socket's owner may have exec'd since its last look: report that first, so the connection names the program that made it. */
  ownerSeen(owner: Owner, now: number): void {
    const w = this.watched.get(owner.pid);
    if (w === undefined || w.exited || w.startTicks !== owner.startTicks) return;
    this.catchUpExec(owner.pid, w, now);
  }

  private scheduleCheck(pid: number, w: Watched, now: number): void {
    // Ten looks a second at itself would cost an idle sensor ~0.05 % of a core for nothing.
    if (pid === this.selfPid) return;
    const { fastTickMs, youngMs, checkBudgetPerSecond } = this.timing;
    const { maxCheckIntervalMs } = this;
    const age = now - w.bornAt;
    // The budget spreads looks at older processes only: a fresh fork, or a process held
    // back until its exec, needs its fast looks whatever else the pod holds.
    const interval =
      age < youngMs || w.held !== undefined ? fastTickMs : Math.max(fastTickMs, Math.min(age / 2, maxCheckIntervalMs), (this.watched.size / checkBudgetPerSecond) * 1000);
    this.schedule.push({ at: now + interval, pid, startTicks: w.startTicks });
  }

  /** One look at a process for an exec or its exit. */
  private check(pid: number, w: Watched, now: number): void {
    if (w.held !== undefined && now - w.bornAt > w.held.holdMs) this.release(w, w.held.expiresAs);
    const fingerprint = readExecFingerprint(pid, this.procRoot);
    if (fingerprint === undefined) this.exit(pid, w, now);
    else if (fingerprint !== w.fingerprint) this.reread(pid, w, now);
  }

  /** Rereads the process when its exe or argv changed since the last look. */
  private catchUpExec(pid: number, w: Watched, now: number): void {
    const fingerprint = readExecFingerprint(pid, this.procRoot);
    if (fingerprint !== undefined && fingerprint !== w.fingerprint) this.reread(pid, w, now);
  }

  /** Reports a held process as last seen, saying what we know of its image. */
  private release(w: Watched, image: SpawnImage): void {
    if (w.held === undefined) return;
    const { snapshot, detection, observedAt } = w.held;
    this.report({ type: "spawn", snapshot, detection, observedAt, image });
    delete w.held;
  }

  /** Something changed in a known PID: an exec, a death, or a new process on a reused PID. */
  private reread(pid: number, w: Watched, now: number): void {
    // A root held because it was caught inside execve had an empty environ then: read it now.
    const unattributed = w.held !== undefined && w.held.snapshot.container === undefined;
    const attribution = (ppid: number): boolean => unattributed && (ppid <= 1 || !this.watched.has(ppid));
    const result = readProcess(pid, { attribution, stdio: this.readStdio }, this.procRoot);
    if (result.kind !== "process") {
      this.exit(pid, w, now);
      return;
    }
    const snapshot = result.snapshot;
    if (snapshot.startTicks !== w.startTicks) {
      this.exit(pid, w, now);
      this.visit(pid, "rescan", now);
      return;
    }
    if (isDead(snapshot)) {
      this.exit(pid, w, now);
      return;
    }
    // Inside execve: the new image has no argv or environment yet. Look again at the next check.
    if (insideExecve(snapshot)) return;
    // The same argv with only the exe link appearing or vanishing is no exec: the process's
    // credentials changed (execve committing them, a worker dropping root).
    if (sameImage(snapshot.fingerprint, w.fingerprint)) {
      w.fingerprint = snapshot.fingerprint;
      if (w.held?.expiresAs === "exec" && snapshot.exe !== undefined) {
        snapshot.container ??= w.held.snapshot.container;
        snapshot.containerId ??= w.held.snapshot.containerId;
        this.report({ type: "spawn", snapshot, detection: w.held.detection, observedAt: now, image: "exec" });
        delete w.held;
      }
      return;
    }
    // A new exe with the old argv is most likely an exec caught between our two reads:
    // believe it only when the next look says the same.
    if (argvOf(snapshot.fingerprint) === argvOf(w.fingerprint) && w.suspect !== snapshot.fingerprint) {
      w.suspect = snapshot.fingerprint;
      return;
    }
    delete w.suspect;
    w.fingerprint = snapshot.fingerprint;
    // Held and exec'd, but its new credentials are not committed yet: wait for the exe link too.
    if (w.held !== undefined && snapshot.exe === undefined && snapshot.problems.some((p) => p.file === "exe") && now - w.bornAt <= w.held.holdMs) {
      snapshot.container ??= w.held.snapshot.container;
      snapshot.containerId ??= w.held.snapshot.containerId;
      Object.assign(w.held, { snapshot, expiresAs: "exec" });
      return;
    }
    if (w.held !== undefined) {
      // The fork we held back has exec'd: one spawn event, with the program it runs now.
      snapshot.container ??= w.held.snapshot.container;
      snapshot.containerId ??= w.held.snapshot.containerId;
      this.report({ type: "spawn", snapshot, detection: w.held.detection, observedAt: now, image: "exec" });
      delete w.held;
    } else {
      this.report({ type: "exec", snapshot, observedAt: now });
    }
  }

  private exit(pid: number, w: Watched, now: number): void {
    this.release(w, "exec-unseen");
    const stat = readStat(pid, this.procRoot);
    const same = stat?.startTicks === w.startTicks;
    // A zombie still holds its wait status (readable to whoever may read the process).
    const exitStatus = same && stat.state === "Z" ? stat.exitStatus : undefined;
    if (!w.exited) this.report({ type: "exit", pid, startTicks: w.startTicks, observedAt: now, ...(exitStatus !== undefined && { exitStatus }) });
    w.exited = true;
    // A zombie keeps its PID until reaped; forget it only once /proc agrees.
    if (!same) this.watched.delete(pid);
  }
}

const always = (): boolean => true;
const never = (): boolean => false;

/** Caught inside execve: argv not laid out yet, or environ emptied under the look (ProcSnapshot.execving). */
function insideExecve(snapshot: ProcSnapshot): boolean {
  return snapshot.args?.length === 0 || snapshot.execving === true;
}

function isDead(snapshot: ProcSnapshot): boolean {
  return snapshot.state === "Z" || snapshot.state === "X";
}
