/**
 * The main thread's stages for each capture event: the process tracker's facts, the
 * policy's controls (violations and enforcement), and the records the policy allows. In
 * complete mode the preload library's reports go through the same stages (complete-mode.ts
 * joins the two sensors' views of each exec).
 */
import type { CaptureEvent } from "../capture/events.ts";
import { reportedExe, reportSnapshot, type ExecReport, type Verdict } from "../capture/exec-report.ts";
import type { ReportCheck } from "../capture/exec-report-server.ts";
import type { Enforcer } from "../enforce/kill.ts";
import type { PeerNames } from "../net/dns-names.ts";
import { PolicyEngine, type EngineResult, type FactSource, type VerdictResult } from "../policy/engine.ts";
import type { PolicyHolder } from "../policy/policy-holder.ts";
import { standingAllow } from "../policy/process-controls.ts";
import { probeRecording } from "../../policies/schema.ts";
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";
import type { ScriptFile } from "../proc/process-facts.ts";
import type { PreloadFacts } from "../proc/preload-facts.ts";
import type { ReadProblem } from "../proc/reader.ts";
import { processRecord } from "../records/process-records.ts";
import type { SensorRecord } from "../records/record.ts";
import { gapRecord, pidSetBackRecord, readProblemCause, readProblemRecord, sensorErrorRecord, stallRecord, triggerRecord, type SensorCounts } from "../records/sensor-records.ts";
import { violationRecord } from "../records/violation-records.ts";
import { ProcessTable } from "../tracker/process-table.ts";
import type { PreloadSetup, PreloadStatus, PreloadVerdict } from "../tracker/preload-status.ts";
import { ProcessTracker, type ProcessEvent } from "../tracker/process-tracker.ts";
import { builtRecords, CompleteMode, type StageResult } from "./complete-mode.ts";
import { NetworkMonitor, type MonitorResult } from "./network-monitor.ts";
import { ProbeRecording } from "./probe-recording.ts";

export interface PipelineDeps {
  clock: BootClock;
  /** Our own PID in the namespace; our process tree is never reported. */
  selfPid: number;
  facts: FactSource;
  enforcer: Enforcer;
  now: () => number;
  /** Where connections' peer names come from (spec.dns). */
  names?: () => PeerNames | undefined;
  /** Container name → the image it was admitted with. */
  containerImages?: Readonly<Record<string, string>>;
  /** Container name → its exec probes' argv (from the injector). */
  probes?: Readonly<Record<string, readonly string[][]>>;
  /**
   * Complete mode: the preload library's setup in the app containers, the /proc facts that
   * explain a missing report, and the script a reporting interpreter names (throws as readScript).
   */
  preload?: { setup: PreloadSetup; readFacts: (pid: number, fingerprint: string) => PreloadFacts; readScript: (pid: number, path: string) => ScriptFile };
}

/** What handling a preload report gives: records, and the verdict for a program waiting before main. */
export interface ReportResult {
  /** Built when called: after the verdict has gone out. */
  records: () => SensorRecord[];
  verdict: Verdict;
  /** The verdict is a deny: the process to stop if it does not stop itself. */
  denied?: { pid: number; startTicks: number };
}

/** The heartbeat's counters the pipeline keeps (the rest are the sink's). */
export type PipelineCounts = Pick<SensorCounts, "processes" | "connections" | "gaps">;

const goneCodes = new Set(["ENOENT", "ESRCH"]);

/** Decides, per capture event, which records to emit and what to enforce. */
export class WatchPipeline {
  private readonly tracker: ProcessTracker;
  private readonly engine: PolicyEngine;
  private readonly network: NetworkMonitor;
  private readonly reportedCauses = new Set<string>();
  private readonly clock: BootClock;
  private readonly policy: PolicyHolder;
  private readonly now: () => number;
  private readonly selfPid: number;
  private readonly complete: CompleteMode | undefined;
  private readonly readScript: ((pid: number, path: string) => ScriptFile) | undefined;
  private readonly probeRecording = new ProbeRecording();
  private readonly counts: PipelineCounts = { processes: 0, connections: 0, gaps: 0 };

  constructor(policy: PolicyHolder, deps: PipelineDeps) {
    this.policy = policy;
    this.clock = deps.clock;
    this.now = deps.now;
    this.selfPid = deps.selfPid;
    const processes = new ProcessTable();
    this.tracker = new ProcessTracker(deps.selfPid, processes, deps.containerImages, deps.probes);
    this.engine = new PolicyEngine(policy, deps);
    if (deps.preload !== undefined) {
      const { setup, readFacts } = deps.preload;
      this.readScript = deps.preload.readScript;
      this.complete = new CompleteMode({
        setup,
        readFacts,
        clock: deps.clock,
        policy,
        now: deps.now,
        controls: (event, waiting, preload) => this.controls(event, waiting, preload),
      });
    }
    const { clock, selfPid, now, names } = deps;
    this.network = new NetworkMonitor({ engine: this.engine, clock, selfPid, now, policy, processes, names: () => names?.() });
  }

  handle(event: CaptureEvent): SensorRecord[] {
    return this.out(this.handleEvent(event));
  }

  /** Every record leaves through here: probes' own records as the policy says (probe-recording.ts). */
  private out(records: SensorRecord[]): SensorRecord[] {
    return this.probeRecording.filter(records, probeRecording(this.policy.current.spec), this.now());
  }

  private handleEvent(event: CaptureEvent): SensorRecord[] {
    switch (event.type) {
      case "trigger":
        return [triggerRecord(event.mode, event.reason)];
      case "error":
        return [sensorErrorRecord(event.message)];
      case "stall":
        return [stallRecord(event)];
      case "pid-set-back":
        return [pidSetBackRecord(event)];
      case "gap":
        this.counts.gaps += event.count;
        return [gapRecord(event)];
      case "spawn":
      case "exec": {
        const problems = this.oncePerCause(event.snapshot.problems.map((problem) => ({ problem, pid: event.snapshot.pid })));
        // The preload library reported this very exec first: it is recorded already.
        if (this.complete?.repeatsReport(event.snapshot)) return problems;
        return [...problems, ...this.processRecords(event)];
      }
      case "exit":
        return this.processRecords(event);
      case "network":
        this.counts.connections += event.sample.observations.filter((o) => o.kind === "connection" && o.owner?.pid !== this.selfPid).length;
        return this.monitorRecords(this.network.handle(event.sample, event.observedAt));
    }
  }

  /** Whether recheck() has work: otherwise it need not run until the next event. */
  get hasWaiting(): boolean {
    return this.engine.watchingInterpreters || this.network.hasWaiting || this.complete?.hasWaiting === true;
  }

  /**
   * Periodic work between capture events: interpreters whose stdio may turn into a socket,
   * connections waiting for an owner or a name, poller events waiting for their reports
   * (`final`: wait no longer, we are stopping).
   */
  recheck(final = false): SensorRecord[] {
    const interpreters = this.engine.watchingInterpreters ? this.engineRecords(this.engine.recheck()) : [];
    const overdue = this.complete === undefined ? [] : this.stageRecords(this.complete.expire(final));
    return this.out([...interpreters, ...overdue, ...this.monitorRecords(this.network.flush(final))]);
  }

  /** What the pipeline saw since its start (the heartbeat's counters). */
  seen(): PipelineCounts {
    return { ...this.counts };
  }

  /** Complete mode: the report socket listens from `at` on, so processes started since report. */
  startReports(at: number): void {
    this.complete?.start(at);
  }

  /**
   * An exec the preload library reported from inside the process. `waiting` reports (enforce
   * mode) get the verdict of the same controls the poller's events go through. `verdict`: how
   * the program went on (tracker/preload-status.ts preloadVerdict), undefined in audit mode.
   */
  handleReport(report: ExecReport, check: ReportCheck, verdict?: PreloadVerdict): ReportResult {
    if (this.complete === undefined || !this.policy.current.spec.forensics.preload) return { records: () => [], verdict: { allow: true } };
    const snapshot = reportSnapshot(report, check);
    // A script's identity decides drift, and the report names only its path: read it now, while
    // a waiting program holds still (the poller's later sight of this exec is dropped).
    if (snapshot.script !== undefined) snapshot.script = this.scriptOf(snapshot.pid, snapshot.script.path);
    // Gone before the server could look, but the poller saw it run this very image: checked all the same.
    const checked = check.verification === "live" || this.complete.polled(snapshot);
    const preload: PreloadStatus = { status: checked ? "reported" : "unverified", ...(verdict !== undefined && { verdict }) };
    // At the end of its wait or past it, the program may go on by the failure choice before a
    // verdict reaches it: judged as one that did not wait (a kill stops it either way).
    const waiting = report.wait && verdict !== "late";
    const merged = this.complete.reported(snapshot, preload, waiting);
    const result = merged.result;
    if (merged.kind === "new") {
      for (const processEvent of this.tracker.report(snapshot, this.now())) mergeStage(result, this.eventStage(processEvent, snapshot.fingerprint, { preload, waiting }));
    } else if (merged.kind === "repeat" && merged.current) {
      // Recorded already (by the poller, before the report was due): the controls again, for
      // the verdict the library waits for, with what the report adds to the poller's facts.
      const p = this.tracker.refresh(snapshot);
      if (p !== undefined) mergeStage(result, this.violationStage(this.engine.onExec(p, this.now(), this.tracker.containerStartTicks(p.container), waiting)));
    } else if (merged.kind === "merged" && merged.current) {
      this.tracker.refresh(snapshot);
    }
    const records = (): SensorRecord[] => this.out(this.stageRecords(result));
    const deny = result.deny;
    if (deny === undefined) return { records, verdict: { allow: true } };
    return { records, verdict: { allow: false, reason: `${deny.control}: ${deny.reason}` }, denied: { pid: report.pid, startTicks: report.startTicks } };
  }

  /**
   * Whether the executable of a program just allowed before main may join the allow table,
   * and for which runs: those the policy allows it in however it runs (policy/process-controls.ts standingAllow). Judged
   * on what the report says of the executable, which is also the table's key (its path and
   * identity): a report that lies can only add an entry for the file it named, judged as that file.
   */
  allowsStanding(report: ExecReport): ReturnType<typeof standingAllow> {
    const p = this.tracker.lookup(report.pid, report.startTicks);
    const exe = reportedExe(report);
    if (p === undefined || exe === undefined || report.exe === undefined || this.policy.current.spec.enforcementMode !== "enforce") return undefined;
    const earliest = this.tracker.earliestContainerStartTicks();
    const seen = { ...p, exe, exeFile: report.exe };
    return standingAllow(this.policy.current.spec.controls, seen, earliest === undefined ? undefined : creationTimeMs(this.clock, earliest));
  }

  /** The script as the sidecar reads it; the path alone when it cannot (gone already, or not ours to read: the poller says why). */
  private scriptOf(pid: number, path: string): ScriptFile {
    try {
      return this.readScript?.(pid, path) ?? { path };
    } catch {
      return { path };
    }
  }

  private processRecords(event: CaptureEvent): SensorRecord[] {
    const fingerprint = event.type === "spawn" || event.type === "exec" ? event.snapshot.fingerprint : undefined;
    return this.tracker.handle(event).flatMap((processEvent) => this.stageRecords(this.eventStage(processEvent, fingerprint)));
  }

  /** One process event through the controls and the records (complete mode may hold both), and the network monitor. */
  private eventStage(processEvent: ProcessEvent, fingerprint: string | undefined, report?: { preload: PreloadStatus; waiting: boolean }): StageResult {
    if (processEvent.kind === "exec") this.counts.processes++;
    let result: StageResult;
    if (this.complete !== undefined) result = this.complete.records(processEvent, fingerprint, report);
    else {
      // Controls first: enforcement must not wait for record building.
      result = this.controls(processEvent, false);
      const record = processRecord(processEvent, this.clock, this.policy.current.spec.forensics);
      if (record !== undefined) result.records.unshift(record);
    }
    const monitor = this.network.onProcess(processEvent);
    return mergeStage(result, { records: monitor.records, problems: monitor.problems });
  }

  /** The controls of a process event, their violations as records. */
  private controls(processEvent: ProcessEvent, waiting: boolean, preload?: PreloadStatus): StageResult {
    const p = processEvent.process;
    if (processEvent.kind === "exec") return this.violationStage(this.engine.onExec(p, processEvent.observedAt, this.tracker.containerStartTicks(p.container), waiting, preload));
    this.engine.onExit(p);
    return { records: [], problems: [] };
  }

  private violationStage(result: VerdictResult): StageResult {
    const stage: StageResult = { records: result.violations.map((v) => violationRecord(v, this.policy.current, this.clock)), problems: result.problems };
    if (result.deny !== undefined) stage.deny = result.deny;
    return stage;
  }

  private stageRecords(result: StageResult): SensorRecord[] {
    return [...this.oncePerCause(result.problems), ...builtRecords(result.records)];
  }

  private engineRecords(result: EngineResult): SensorRecord[] {
    return [...this.oncePerCause(result.problems), ...result.violations.map((v) => violationRecord(v, this.policy.current, this.clock))];
  }

  private monitorRecords(result: MonitorResult): SensorRecord[] {
    return [...this.oncePerCause(result.problems), ...result.records];
  }

  /** What the sensor may not read, as a status record the first time each cause (file, errno, uid) comes up. */
  private oncePerCause(problems: Array<{ problem: ReadProblem; pid: number }>): SensorRecord[] {
    const records: SensorRecord[] = [];
    for (const { problem, pid } of problems) {
      // A process gone mid-look is no configuration problem: its own records name what is missing.
      if (goneCodes.has(problem.code)) continue;
      const cause = readProblemCause(problem);
      if (this.reportedCauses.has(cause)) continue;
      this.reportedCauses.add(cause);
      records.push(readProblemRecord(problem, pid));
    }
    return records;
  }
}

function mergeStage(into: StageResult, from: StageResult): StageResult {
  into.records.push(...from.records);
  into.problems.push(...from.problems);
  if (from.deny !== undefined) into.deny ??= from.deny;
  return into;
}
