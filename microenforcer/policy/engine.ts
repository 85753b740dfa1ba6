/**
 * Applies the current policy to process facts: gathers what the controls need, runs the
 * pure controls, enforces (SIGKILL in enforce mode, when the control blocks) and returns
 * the violations (records/violation-records.ts makes them records). Each finding is
 * reported once per process and control.
 */
import type { Enforcer, KillOutcome } from "../enforce/kill.ts";
import type { AccessDenial } from "../proc/access.ts";
import type { Stdio } from "../proc/process-facts.ts";
import type { ReadProblem } from "../proc/reader.ts";
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";
import type { PreloadStatus } from "../tracker/preload-status.ts";
import type { ProcessInfo } from "../tracker/process-tracker.ts";
import { checkListen, checkOutbound, PortScanDetector, type ConnectionFacts } from "./network-controls.ts";
import type { PolicyHolder } from "./policy-holder.ts";
import {
  checkContainerExec,
  checkDrift,
  checkExecutables,
  checkFilelessExec,
  checkPreloadEvasion,
  checkReverseShell,
  isInterpreter,
  type Finding,
} from "./process-controls.ts";

/** How many unattributed connections' findings are remembered, to report each once. */
const maxUnattributedRemembered = 4096;

/** A /proc read for what changes after the exec: a shell's own redirection of its stdio. Throws (e.g. EACCES) when not permitted. */
export interface FactSource {
  stdio(pid: number): Stdio | undefined;
  /** Why a read of the process was refused, when that can be told. */
  denial(pid: number): AccessDenial | undefined;
}

export interface EngineDeps {
  facts: FactSource;
  enforcer: Enforcer;
  clock: BootClock;
  now: () => number;
}

/** `blocked`: the preload library stopped the program before main on the sidecar's verdict. */
export type Action = "alert" | "blocked" | KillOutcome;

/** A finding, and what was done about it. */
export interface Violation {
  finding: Finding;
  /** Absent for a connection whose process was gone before the sensor saw it. */
  process?: ProcessInfo;
  action: Action;
  /** Sensor saw the process → kill(2) returned. */
  enforcementLatencyMs?: number;
  observedAt: number;
}

export interface EngineResult {
  violations: Violation[];
  problems: Array<{ problem: ReadProblem; pid: number }>;
}

/** onExec for a program waiting before main for the verdict: deny when a blocking control matched. */
export interface VerdictResult extends EngineResult {
  deny?: Finding;
}

const key = (p: ProcessInfo): string => `${p.pid}:${p.startTicks}`;

export class PolicyEngine {
  private readonly policy: PolicyHolder;
  private readonly deps: EngineDeps;
  private readonly reported = new Set<string>();
  /** Unattributed connections' findings, the oldest forgotten first (no exit ends them). */
  private readonly reportedUnattributed = new Set<string>();
  /** Live interpreters, re-checked for network stdio: a shell redirects after its exec. */
  private readonly interpreters = new Map<string, ProcessInfo>();
  private readonly portScans = new PortScanDetector();

  constructor(policy: PolicyHolder, deps: EngineDeps) {
    this.policy = policy;
    this.deps = deps;
  }

  /**
   * A process started or exec'd; containerStartTicks is its container init's start.
   * `waiting`: the preload library holds the program before main for the verdict, so a
   * blocking finding in enforce mode is answered with deny (`blocked`) instead of a kill.
   * `preload`: whether the library reported this exec (complete mode). A report the sidecar
   * could not hold against its process (`unverified`: gone, or running another program by
   * then) is recorded, and its findings alert: nothing is killed on its word alone.
   */
  onExec(p: ProcessInfo, observedAt: number, containerStartTicks: number | undefined, waiting = false, preload?: PreloadStatus): VerdictResult {
    const controls = this.policy.current.spec.controls;
    const result: VerdictResult = { violations: [], problems: [] };
    if (controls === undefined) return result;
    const findings: Finding[] = [...checkContainerExec(controls, p), ...checkExecutables(controls, p), ...checkFilelessExec(controls, p)];
    if (preload !== undefined) findings.push(...checkPreloadEvasion(controls, p, preload));
    // The identities seen with the exe link; when one could not be read, p.unread says why.
    if (containerStartTicks !== undefined) findings.push(...checkDrift(controls, p, creationTimeMs(this.deps.clock, containerStartTicks)));
    this.interpreters.delete(key(p));
    if (controls.reverseShell !== undefined && isInterpreter(p)) {
      this.interpreters.set(key(p), p);
      findings.push(...this.reverseShell(result, p, p.stdio));
    }
    this.enforceFindings(result, p, findings, observedAt, waiting, preload?.status === "unverified");
    return result;
  }

  /** A connection or listening socket of process p, seen at observedAt. */
  onConnection(p: ProcessInfo, c: ConnectionFacts, observedAt: number): EngineResult {
    const controls = this.policy.current.spec.controls;
    const result: EngineResult = { violations: [], problems: [] };
    if (controls === undefined) return result;
    this.enforceFindings(result, p, [...checkOutbound(controls, c), ...checkListen(controls, c), ...this.portScans.observe(controls, key(p), c, observedAt)], observedAt);
    return result;
  }

  /**
   * A connection or listening socket whose process is unknown (closed before the sensor
   * saw it): still a finding of the network controls, with nothing left to kill ("gone").
   */
  onUnattributedConnection(c: ConnectionFacts, observedAt: number): EngineResult {
    const controls = this.policy.current.spec.controls;
    const result: EngineResult = { violations: [], problems: [] };
    if (controls === undefined) return result;
    const enforce = this.policy.current.spec.enforcementMode === "enforce";
    for (const finding of [...checkOutbound(controls, c), ...checkListen(controls, c)]) {
      // The same connection comes again once its peer's name is known: one finding per rule.
      const k = `${c.transport} ${c.localAddress}:${c.localPort} ${c.peerAddress ?? ""}:${c.peerPort ?? ""} ${finding.rule}`;
      if (this.reportedUnattributed.has(k)) continue;
      this.reportedUnattributed.add(k);
      if (this.reportedUnattributed.size > maxUnattributedRemembered) this.reportedUnattributed.delete(this.reportedUnattributed.values().next().value!);
      const action: Action = enforce && finding.block ? "gone" : "alert";
      result.violations.push({ finding, action, observedAt });
    }
    return result;
  }

  onExit(p: ProcessInfo): void {
    const k = key(p);
    this.interpreters.delete(k);
    this.portScans.forget(k);
    for (const r of [...this.reported]) if (r.startsWith(`${k}:`)) this.reported.delete(r);
  }

  /** Looks again at live interpreters' stdio. */
  recheck(): EngineResult {
    const result: EngineResult = { violations: [], problems: [] };
    for (const p of this.interpreters.values()) this.enforceFindings(result, p, this.reverseShell(result, p), this.deps.now());
    return result;
  }

  get watchingInterpreters(): boolean {
    return this.interpreters.size > 0;
  }

  /** `seen`: the stdio as first seen (at the exec); later checks read it again. */
  private reverseShell(result: EngineResult, p: ProcessInfo, seen?: Stdio): Finding[] {
    const controls = this.policy.current.spec.controls;
    if (controls === undefined) return [];
    return checkReverseShell(controls, p, seen ?? this.readFact(result, p, "fd", () => this.deps.facts.stdio(p.pid)));
  }

  /** A fact from /proc, or undefined when it may not be read (a problem, unless the process is gone). */
  private readFact<T>(result: EngineResult, p: ProcessInfo, file: ReadProblem["file"], read: () => T): T | undefined {
    try {
      return read();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EUNKNOWN";
      if (code === "ENOENT" || code === "ESRCH") return undefined;
      const denial = code === "EACCES" || code === "EPERM" ? this.deps.facts.denial(p.pid) : undefined;
      result.problems.push({ problem: { file, code, uid: denial?.target.uid ?? p.euid, ...(denial !== undefined ? { denial } : {}) }, pid: p.pid });
      return undefined;
    }
  }

  /**
   * Each finding new for this process is a violation: killed in enforce mode where the control
   * blocks (one kill per process), else an alert. A program `waiting` before main for the
   * verdict is not killed but denied (`blocked`), whether or not the finding was new.
   */
  private enforceFindings(result: VerdictResult, p: ProcessInfo, findings: Finding[], observedAt: number, waiting = false, unverified = false): void {
    const enforce = this.policy.current.spec.enforcementMode === "enforce";
    let killed: Action | undefined;
    for (const finding of findings) {
      // A program still waiting is denied whether or not this finding was reported before.
      if (enforce && finding.block && waiting) result.deny ??= finding;
      const k = `${key(p)}:${finding.control}:${finding.rule}`;
      if (this.reported.has(k)) continue;
      this.reported.add(k);
      let action: Action = "alert";
      let latency: number | undefined;
      if (enforce && finding.block) {
        // One kill per process, however many controls it broke.
        killed ??= waiting ? "blocked" : unverified ? "alert" : this.deps.enforcer.kill(p.pid, p.startTicks);
        action = killed;
        latency = this.deps.now() - observedAt;
      }
      result.violations.push({ finding, process: p, action, observedAt, ...(latency !== undefined && { enforcementLatencyMs: latency }) });
    }
  }
}
