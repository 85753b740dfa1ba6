/**
 * The main thread's stages for each capture event: the process tracker's facts, the
 * policy's controls (violations and enforcement), and the records the policy allows.
 */
import type { CaptureEvent } from "../capture/events.ts";
import type { Enforcer } from "../enforce/kill.ts";
import type { PeerNames } from "../net/dns-names.ts";
import { PolicyEngine, type EngineResult, type FactSource } from "../policy/engine.ts";
import type { PolicyHolder } from "../policy/policy-holder.ts";
import type { BootClock } from "../proc/boot-clock.ts";
import type { ReadProblem } from "../proc/reader.ts";
import { processRecord } from "../records/process-records.ts";
import type { SensorRecord } from "../records/record.ts";
import { gapRecord, readProblemCause, readProblemRecord, sensorErrorRecord, triggerRecord } from "../records/sensor-records.ts";
import { violationRecord } from "../records/violation-records.ts";
import { ProcessTable } from "../tracker/process-table.ts";
import { ProcessTracker } from "../tracker/process-tracker.ts";
import { NetworkMonitor, type MonitorResult } from "./network-monitor.ts";

export interface PipelineDeps {
  clock: BootClock;
  /** Our own PID in the namespace; our process tree is never reported. */
  selfPid: number;
  facts: FactSource;
  enforcer: Enforcer;
  now: () => number;
  /** Where connections' peer names come from (spec.dns). */
  names?: () => PeerNames | undefined;
}

/** Decides, per capture event, which records to emit and what to enforce. */
export class WatchPipeline {
  private readonly tracker: ProcessTracker;
  private readonly engine: PolicyEngine;
  private readonly network: NetworkMonitor;
  private readonly reportedCauses = new Set<string>();
  private readonly clock: BootClock;
  private readonly policy: PolicyHolder;

  constructor(policy: PolicyHolder, deps: PipelineDeps) {
    this.policy = policy;
    this.clock = deps.clock;
    const processes = new ProcessTable();
    this.tracker = new ProcessTracker(deps.selfPid, processes);
    this.engine = new PolicyEngine(policy, deps);
    const { clock, selfPid, now, names } = deps;
    this.network = new NetworkMonitor({ engine: this.engine, clock, selfPid, now, policy, processes, names: () => names?.() });
  }

  handle(event: CaptureEvent): SensorRecord[] {
    switch (event.type) {
      case "trigger":
        return [triggerRecord(event.mode, event.reason)];
      case "error":
        return [sensorErrorRecord(event.message)];
      case "gap":
        return [gapRecord(event)];
      case "spawn":
      case "exec":
        return [...this.oncePerCause(event.snapshot.problems.map((problem) => ({ problem, pid: event.snapshot.pid }))), ...this.processRecords(event)];
      case "exit":
        return this.processRecords(event);
      case "network":
        return this.monitorRecords(this.network.handle(event.sample, event.observedAt));
    }
  }

  /**
   * Periodic work between capture events: interpreters whose stdio may turn into a socket,
   * connections waiting for an owner or a name (`final`: wait no longer, we are stopping).
   */
  recheck(final = false): SensorRecord[] {
    const interpreters = this.engine.watchingInterpreters ? this.engineRecords(this.engine.recheck()) : [];
    return [...interpreters, ...this.monitorRecords(this.network.flush(final))];
  }

  private processRecords(event: CaptureEvent): SensorRecord[] {
    const records: SensorRecord[] = [];
    for (const processEvent of this.tracker.handle(event)) {
      const p = processEvent.process;
      // Controls first: enforcement must not wait for record building.
      const violations =
        processEvent.kind === "exec"
          ? this.engineRecords(this.engine.onExec(p, processEvent.observedAt, this.tracker.containerStartTicks(p.container)))
          : (this.engine.onExit(p), []);
      const record = processRecord(processEvent, this.clock, this.policy.current.spec.forensics);
      if (record !== undefined) records.push(record);
      records.push(...violations, ...this.monitorRecords(this.network.onProcess(processEvent)));
    }
    return records;
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
      const cause = readProblemCause(problem);
      if (this.reportedCauses.has(cause)) continue;
      this.reportedCauses.add(cause);
      records.push(readProblemRecord(problem, pid));
    }
    return records;
  }
}
