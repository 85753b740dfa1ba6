/**
 * The MicroEnforcer runtime: capture worker → process tracker → records the policy
 * allows, and the policy's controls → violations and enforcement → emitter. The sidecar
 * and `microenforcer watch` are this one program.
 */
import type { RuntimePolicy } from "../policies/schema.ts";
import { defaultCaptureOptions, type CaptureEvent, type CaptureOptions } from "./capture/capture-loop.ts";
import { ProcessSensor } from "./capture/process-sensor.ts";
import { createEnforcer, type Enforcer } from "./enforce/kill.ts";
import type { PeerNames } from "./net/dns-names.ts";
import { DnsService } from "./net/dns-service.ts";
import { NetworkMonitor, networkSensorNeeded } from "./net/network-monitor.ts";
import { PolicyEngine, type EngineResult, type FactSource } from "./policy/engine.ts";
import { readBootClock } from "./proc/boot-clock.ts";
import { readExeChangeTime, readStdioSockets } from "./proc/process-facts.ts";
import type { ReadProblem } from "./proc/reader.ts";
import { processRecord, type BootClock } from "./records/process-records.ts";
import type { SensorRecord } from "./records/record.ts";
import { gapRecord, readProblemCause, readProblemRecord, statusRecord } from "./records/sensor-records.ts";
import { ProcessTracker } from "./tracker/process-tracker.ts";

export interface RecordSink {
  emit(record: SensorRecord): void;
}

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
  private policy: RuntimePolicy;

  constructor(policy: RuntimePolicy, deps: PipelineDeps) {
    this.policy = policy;
    this.clock = deps.clock;
    this.tracker = new ProcessTracker(deps.selfPid);
    this.engine = new PolicyEngine(policy, deps);
    const { clock, selfPid, now, names } = deps;
    this.network = new NetworkMonitor({ engine: this.engine, clock, selfPid, now, policy: () => this.policy, names: () => names?.() });
  }

  setPolicy(policy: RuntimePolicy): void {
    this.policy = policy;
    this.engine.setPolicy(policy);
  }

  handle(event: CaptureEvent): SensorRecord[] {
    switch (event.type) {
      case "trigger":
        return [
          event.mode === "ns_last_pid"
            ? statusRecord("INFO", "process sensor triggered by /proc/sys/kernel/ns_last_pid", { "microenforcer.sensor.trigger": event.mode })
            : statusRecord("WARN", `process sensor falls back to scanning /proc: ${event.reason ?? ""}`, {
                "microenforcer.sensor.trigger": event.mode,
              }),
        ];
      case "error":
        return [statusRecord("ERROR", `process sensor error: ${event.message}`)];
      case "gap":
        return [gapRecord(event)];
      case "spawn":
      case "exec":
        return [...this.problems(event.snapshot.problems.map((problem) => ({ problem, pid: event.snapshot.pid }))), ...this.processRecords(event)];
      case "exit":
        return this.processRecords(event);
      case "network":
        return this.engineRecords(this.network.handle(event.sample, event.observedAt));
    }
  }

  /**
   * Periodic work between capture events: interpreters whose stdio may turn into a socket,
   * connections waiting for an owner or a name (`final`: wait no longer, we are stopping).
   */
  recheck(final = false): SensorRecord[] {
    const interpreters = this.engine.watchingInterpreters ? this.engineRecords(this.engine.recheck()) : [];
    return [...interpreters, ...this.engineRecords(this.network.flush(final))];
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
      const record = processRecord(processEvent, this.clock, this.policy.spec.forensics);
      if (record !== undefined) records.push(record);
      records.push(...violations, ...this.engineRecords(this.network.onProcess(processEvent)));
    }
    return records;
  }

  private engineRecords(result: EngineResult): SensorRecord[] {
    return [...this.problems(result.problems), ...result.records];
  }

  private problems(problems: Array<{ problem: ReadProblem; pid: number }>): SensorRecord[] {
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

export interface WatchOptions {
  policy: RuntimePolicy;
  sink: RecordSink;
  capture?: Partial<CaptureOptions>;
  selfPid?: number;
}

export interface Watch {
  setPolicy(policy: RuntimePolicy): void;
  stop(): Promise<void>;
}

/** How often live interpreters are looked at again for a socket on their stdio. */
const recheckIntervalMs = 50;

export function startWatch(options: WatchOptions): Watch {
  const capture = { ...defaultCaptureOptions, ...options.capture };
  const procRoot = capture.procRoot;
  const dns = new DnsService();
  const pipeline = new WatchPipeline(options.policy, {
    clock: readBootClock(procRoot),
    selfPid: options.selfPid ?? process.pid,
    facts: {
      stdio: (pid) => readStdioSockets(pid, procRoot),
      exeChangedMs: (pid, path) => readExeChangeTime(pid, path, procRoot),
    },
    enforcer: createEnforcer(procRoot),
    now: () => performance.timeOrigin + performance.now(),
    names: () => dns.names(),
  });
  const { sink } = options;
  const emitAll = (records: SensorRecord[]): void => {
    for (const record of records) sink.emit(record);
  };
  sink.emit(policyStatus(options.policy, "microenforcer watching this PID namespace with policy"));
  // Applied in order, so a quick reload cannot overtake a forwarder still starting.
  let dnsApplied = dns.apply(options.policy).then(emitAll);
  const sensor = new ProcessSensor(
    capture,
    (events) => {
      for (const event of events) emitAll(pipeline.handle(event));
    },
    networkSensorNeeded(options.policy),
  );
  const recheck = setInterval(() => emitAll(pipeline.recheck()), recheckIntervalMs);
  return {
    setPolicy(policy) {
      pipeline.setPolicy(policy);
      sensor.setNetwork(networkSensorNeeded(policy));
      dnsApplied = dnsApplied.then(() => dns.apply(policy)).then(emitAll);
      sink.emit(policyStatus(policy, "policy reloaded:"));
    },
    async stop() {
      clearInterval(recheck);
      await sensor.stop();
      emitAll(pipeline.recheck(true));
      await dnsApplied;
      await dns.stop();
    },
  };
}

function policyStatus(policy: RuntimePolicy, what: string): SensorRecord {
  const generation = policy.metadata.generation;
  return statusRecord("INFO", `${what} ${policy.metadata.name}${generation === undefined ? "" : ` (generation ${generation})`}, ${policy.spec.enforcementMode} mode`, {
    "microenforcer.policy.name": policy.metadata.name,
    "microenforcer.policy.mode": policy.spec.enforcementMode,
    ...(generation !== undefined && { "microenforcer.policy.generation": generation }),
  });
}
