/**
 * The capture loop: finds processes as early as /proc allows and reports spawn, exec and
 * exit with (pid, starttime) identity. It runs on its own thread (see worker-entry.ts) so
 * that exporting records never delays a look at /proc. Each tick:
 * - the trigger (pid-trigger.ts): the PIDs handed out since the last tick are read at once,
 *   newest first and within tickBudgetMs, the rest at the next ticks (pid-backlog.ts);
 * - the socket sensor, when the policy wants it (network-host.ts), before the looks that
 *   may find its sockets' owners gone, so that a connection's record comes first;
 * - the looks due at known processes, for an exec or an exit (process-watch.ts), within
 *   tickBudgetMs too;
 * - a /proc directory scan on a slower timer finds what the trigger cannot (PID wrap, a
 *   missing ns_last_pid) and the exits of processes not yet due for a look;
 * - every gapReportIntervalMs, what it knows it missed (gap-counter.ts);
 * - a tick stallMs later than planned: the loop itself was stopped or starved (a stall event).
 * What it reports is the event contract of events.ts.
 */
import { defaultSamplerOptions, type SamplerOptions } from "../net/network-sampler.ts";
import type { CaptureEvent, Detection } from "./events.ts";
import { GapCounter } from "./gap-counter.ts";
import { monotonicNow } from "../proc/boot-clock.ts";
import { NetworkHost, type PollReason } from "./network-host.ts";
import { PidBacklog } from "./pid-backlog.ts";
import type { PidHistory } from "./pid-history.ts";
import { PidTrigger } from "./pid-trigger.ts";
import { ProcessWatch, type ReadAhead, type WatchTiming } from "./process-watch.ts";

export interface CaptureOptions extends WatchTiming {
  procRoot: string;
  /** The sensor's own PID there, when it is: never looked at again (see ProcessWatch). */
  selfPid?: number;
  /** Trigger poll interval while PIDs are being allocated. */
  tickMs: number;
  /** Trigger poll interval after activeWindowMs without a new PID: waking costs CPU even when idle. */
  idleTickMs: number;
  /** The same while the preload library reports execs: a report makes the loop active again. */
  preloadIdleTickMs: number;
  /**
   * WatchTiming.maxCheckIntervalMs while the library reports execs: a dynamic program exec'd
   * in place reports itself, so looks at old processes are left with exits and static programs.
   */
  preloadMaxCheckIntervalMs: number;
  activeWindowMs: number;
  /**
   * Longest a tick reads new PIDs, and again runs due looks. A burst of thousands of PIDs
   * (~0.3 ms each) read in one go would hide what starts and ends meanwhile; read a budget
   * a tick, newest first, a newcomer waits a tick or two.
   */
  tickBudgetMs: number;
  /**
   * PIDs read, and looks run, per tick whatever the budget: a thread kept off the CPU
   * mid-tick (a loaded host) must not put an ordinary tick's few PIDs off to the next.
   */
  minLooksPerTick: number;
  rescanIntervalMs: number;
  gapReportIntervalMs: number;
  /** Scan interval when ns_last_pid is unavailable. */
  fallbackScanMs: number;
  /** A tick this much later than planned: the loop did not run (stopped, frozen, starved), which is evidence. */
  stallMs: number;
  /** The network sensor's timing and limits (see net/network-sampler.ts). */
  network: Omit<SamplerOptions, "procRoot">;
}

export const defaultCaptureOptions: CaptureOptions = {
  procRoot: "/proc",
  tickMs: 1,
  idleTickMs: 10,
  preloadIdleTickMs: 100,
  preloadMaxCheckIntervalMs: 300,
  activeWindowMs: 2000,
  tickBudgetMs: 5,
  minLooksPerTick: 16,
  fastTickMs: 0.25,
  youngMs: 20,
  maxCheckIntervalMs: 100,
  checkBudgetPerSecond: 1000,
  holdForkMs: 20,
  rescanIntervalMs: 1000,
  gapReportIntervalMs: 10_000,
  fallbackScanMs: 10,
  stallMs: 1000,
  network: defaultSamplerOptions,
};

/** PIDs looked at a second time per tick: in a fork storm most are gone, and each look costs. */
const maxUnborn = 256;

export class CaptureLoop {
  private readonly options: CaptureOptions;
  private readonly trigger: PidTrigger | undefined;
  private readonly processes: ProcessWatch;
  private readonly network: NetworkHost;
  private readonly gaps = new GapCounter();
  private readonly backlog = new PidBacklog();
  /** Time that runs during a tick, for its budget (ticks are given `now`, which stands still). */
  private readonly clock: () => number;
  /** Which PIDs were handed out when, for the main thread to hold reports of gone processes against. */
  private readonly history: PidHistory | undefined;
  private lastActivity = 0;
  private lastRescan = 0;
  /** The last tick, and the delay planned after it (nextDelayMs): a tick far later than both is a stall. */
  private lastTick: number | undefined;
  private plannedDelay: number | undefined;
  private preload = false;
  private events: CaptureEvent[] = [];
  /** When the PID being read from the backlog was handed out (ReadAhead.before). */
  private reading: number | undefined;
  /** PIDs handed out that were not in /proc yet at their first look (see notInProcYet). */
  private unborn: number[] = [];
  /** Set-backs of ns_last_pid not said yet: the first is said at once, later ones counted, at most once per gap report interval. */
  private setBacks: { count: number; since: number; until: number; lastPid: number } | undefined;
  private setBacksSaidAt = -Infinity;

  constructor(options: CaptureOptions, history?: PidHistory, clock: () => number = monotonicNow) {
    this.options = options;
    this.history = history;
    this.clock = clock;
    const root = options.procRoot;
    try {
      this.trigger = new PidTrigger(root);
      this.events.push({ type: "trigger", mode: "ns_last_pid" });
    } catch (err) {
      this.trigger = undefined;
      const reason = `${root}/sys/kernel/ns_last_pid unavailable (${(err as Error).message}); kernel built without CONFIG_CHECKPOINT_RESTORE?`;
      this.events.push({ type: "trigger", mode: "scan", reason });
    }
    const readAhead: ReadAhead = {
      parent: (ppid, now) => {
        const at = this.backlog.remove(ppid);
        if (at !== undefined) this.firstLook(ppid, at, now);
      },
      before: (now) => {
        if (this.reading === undefined) return;
        for (const { pid, at } of this.backlog.takeHandedOutBefore(this.reading)) this.firstLook(pid, at, now);
      },
    };
    this.processes = new ProcessWatch(root, options, (event) => this.events.push(event), options.selfPid, readAhead);
    this.network = new NetworkHost({ ...options.network, procRoot: root });
  }

  /** Delay until the next tick should run. */
  nextDelayMs(now: number): number {
    const delay = this.plannedDelayMs(now);
    this.plannedDelay = delay;
    return delay;
  }

  private plannedDelayMs(now: number): number {
    if (this.trigger === undefined) return this.options.fallbackScanMs;
    const active = !this.backlog.empty || now - this.lastActivity < this.options.activeWindowMs;
    // Idle, every process is older than the active window, so its looks are maxCheckIntervalMs
    // apart: they wait for the idle tick rather than each waking the thread on its own
    // (a wake-up costs more than the look; a look comes at most one idle tick late).
    const base = active ? Math.min(this.options.tickMs, this.processes.nextCheckAt() - now) : this.preload ? this.options.preloadIdleTickMs : this.options.idleTickMs;
    return Math.max(this.options.fastTickMs, Math.min(base, this.network.nextDueAt() - now));
  }

  /** Turns the network sensor on or off (the policy wants network records or controls). */
  setNetwork(on: boolean): void {
    this.events.push(...this.network.set(on));
  }

  /** Whether the preload library reports execs: then the loop may sleep longer while idle. */
  setPreload(on: boolean): void {
    this.preload = on;
    // Each look costs the same, however rarely: idle CPU grows with the processes in the pod.
    this.processes.maxCheckIntervalMs = on ? this.options.preloadMaxCheckIntervalMs : this.options.maxCheckIntervalMs;
  }

  /**
   * A process the preload library reported and the main thread recorded: watched from now
   * on (no second spawn); gone already, its exit is reported and it is no gap.
   */
  adopt(pid: number, startTicks: number, fingerprint: string, now: number): void {
    // Reports come when programs start: look at /proc often again.
    this.lastActivity = now;
    if (!this.processes.adopt(pid, startTicks, fingerprint, now)) this.gaps.reported(pid);
  }

  /** Whether interpreters' stdio is read at first sight (the policy looks for reverse shells). */
  setStdio(on: boolean): void {
    this.processes.readStdio = on;
  }

  /** The first look: every process already running, reported as `startup`. */
  start(now: number): CaptureEvent[] {
    this.lastTick = now;
    this.gaps.start(now);
    if (this.trigger !== undefined) this.history?.begin(this.trigger.lastPid, now);
    this.rescan(now, "startup", false);
    // In start order, so parents precede children and a container's init its exec sessions.
    const order = (e: CaptureEvent): number =>
      e.type === "spawn" ? e.snapshot.startTicks : e.type === "exit" ? e.startTicks + 0.5 : -1;
    const processes = this.drain().sort((x, y) => order(x) - order(y));
    if (this.trigger !== undefined) for (const e of processes) if (e.type === "spawn") this.history?.alive(e.snapshot.pid, e.snapshot.startTicks);
    this.pollNetwork(now, "nudge");
    return [...processes, ...this.drain()];
  }

  tick(now: number): CaptureEvent[] {
    try {
      const change = this.trigger?.changed();
      // First, so that what it found on waking up comes after the evidence of how long it slept.
      // Counted from the last tick's start, not from when the delay was planned: a stop that
      // lands during a tick (after its look, before the plan) is a stall all the same.
      if (this.plannedDelay !== undefined && this.lastTick !== undefined && now - this.lastTick - this.plannedDelay >= this.options.stallMs) {
        const pidCount = this.trigger === undefined ? undefined : change === undefined ? 0 : change.count;
        this.events.push({ type: "stall", since: this.lastTick, until: now, ...(pidCount !== undefined && { pidCount }) });
      }
      if (change !== undefined && this.lastTick !== undefined) {
        if (change.setBack) {
          this.history?.lost(change.current, this.lastTick, now);
          const s = (this.setBacks ??= { count: 0, since: this.lastTick, until: now, lastPid: change.current });
          Object.assign(s, { count: s.count + 1, until: now, lastPid: change.current });
        } else this.history?.handedOut(this.trigger!.lastPid, change.current, this.lastTick, now);
      }
      this.queueSetBacks(now);
      this.lastTick = now;
      this.plannedDelay = undefined;
      this.lookAgainAtUnborn(now);
      if (change !== undefined) {
        if (change.setBack) this.rescan(now, "rescan");
        else this.backlog.add(change.ranges, now);
        this.trigger!.accept(change);
        this.lastActivity = now;
      }
      this.readBacklog(now);
      // Before the checks that may find owners' exits: a connection's record comes first.
      this.pollNetwork(now, this.lastActivity === now ? "nudge" : "timer");
      this.processes.runDueChecks(now, this.budget());
      const rescanEvery = this.trigger === undefined ? this.options.fallbackScanMs : this.options.rescanIntervalMs;
      // Not while PIDs wait: it would list them all (tens of ms) to leave them to the backlog,
      // and the checks find exits meanwhile.
      if (this.backlog.empty && now - this.lastRescan >= rescanEvery) this.rescan(now, "rescan");
      if (this.gaps.due(now, this.options.gapReportIntervalMs)) this.queueGaps(now);
    } catch (err) {
      this.events.push({ type: "error", message: (err as Error).message });
    }
    return this.drain();
  }

  /** The last look before stopping: every exit and exec not yet seen, and the gap count. */
  finish(now: number): CaptureEvent[] {
    this.lookAgainAtUnborn(now);
    for (let next = this.backlog.take(); next !== undefined; next = this.backlog.take()) this.firstLook(next.pid, next.at, now);
    this.rescan(now, "rescan", false);
    this.pollNetwork(now, "final");
    this.processes.checkAll(now);
    this.queueGaps(now);
    this.queueSetBacks(now, true);
    return this.drain();
  }

  close(): void {
    this.trigger?.close();
    this.network.close();
  }

  /** Whether the budget started now allows one more look. */
  private budget(): () => boolean {
    const until = this.clock() + this.options.tickBudgetMs;
    let looks = 0;
    return () => ++looks <= this.options.minLooksPerTick || this.clock() < until;
  }

  /** Handed-out PIDs not read yet, newest first, within the budget. */
  private readBacklog(now: number): void {
    // Most ticks have nothing waiting: no budget to start.
    if (this.backlog.empty) return;
    const more = this.budget();
    while (!this.backlog.empty && more()) {
      const { pid, at } = this.backlog.take()!;
      this.firstLook(pid, at, now);
    }
    // What waits for the next tick is a burst: the gap records say how large it grew.
    if (!this.backlog.empty) this.gaps.waiting(this.backlog.size);
  }

  /** A handed-out PID gone at its first look is a gap, unless it was handed out this tick (see notInProcYet). */
  private firstLook(pid: number, handedOutAt: number, now: number): void {
    const outer = this.reading;
    this.reading = handedOutAt;
    let seen: boolean;
    try {
      seen = this.processes.visit(pid, "trigger", now);
    } finally {
      this.reading = outer;
    }
    if (seen) return;
    if (handedOutAt === now) this.notInProcYet(pid);
    else this.gaps.missed(pid, true);
  }

  /**
   * The kernel hands a PID out (ns_last_pid moves) before the new process shows in /proc,
   * most often µs apart, more when the forking thread is preempted in between: a PID not
   * there yet is looked at once more at the next tick before it counts as a gap.
   */
  private notInProcYet(pid: number): void {
    if (this.unborn.length < maxUnborn) this.unborn.push(pid);
    else this.gaps.missed(pid);
  }

  private lookAgainAtUnborn(now: number): void {
    const unborn = this.unborn;
    this.unborn = [];
    for (const pid of unborn) if (!this.processes.visit(pid, "trigger", now)) this.gaps.missed(pid);
  }

  /**
   * PIDs the backlog holds (a set-back in a burst) are left to it. `budgeted`, what is left
   * over waits for the next rescan.
   */
  private rescan(now: number, detection: Detection, budgeted = true): void {
    this.lastRescan = now;
    this.processes.rescan(now, detection, budgeted ? this.budget() : undefined, (pid) => this.backlog.has(pid));
  }

  /** Owners' execs found meanwhile are reported first (ProcessWatch.ownerSeen). */
  private pollNetwork(now: number, reason: PollReason): void {
    const events = this.network.poll(now, reason, this.processes);
    this.events.push(...events);
  }

  /** A writer of ns_last_pid could otherwise make a record a tick. */
  private queueSetBacks(now: number, final = false): void {
    if (this.setBacks === undefined || (!final && now - this.setBacksSaidAt < this.options.gapReportIntervalMs)) return;
    this.events.push({ type: "pid-set-back", ...this.setBacks });
    this.setBacks = undefined;
    this.setBacksSaidAt = now;
  }

  private queueGaps(now: number): void {
    this.events.push(...this.gaps.take(now, this.network.takeTcpGap()));
    // A burst still being read is evidence in the next window too.
    if (!this.backlog.empty) this.gaps.waiting(this.backlog.size);
  }

  private drain(): CaptureEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }
}
