/**
 * The MicroEnforcer runtime: capture worker → process tracker → records the policy
 * allows → emitter. The sidecar and `microenforcer watch` are this one program.
 */
import type { RuntimePolicy } from "../policies/schema.ts";
import { defaultCaptureOptions, type CaptureEvent, type CaptureOptions } from "./capture/capture-loop.ts";
import { ProcessSensor } from "./capture/process-sensor.ts";
import { readBootClock } from "./proc/boot-clock.ts";
import { processRecord, type BootClock } from "./records/process-records.ts";
import type { SensorRecord } from "./records/record.ts";
import { gapRecord, readProblemCause, readProblemRecord, statusRecord } from "./records/sensor-records.ts";
import { ProcessTracker } from "./tracker/process-tracker.ts";

export interface RecordSink {
  emit(record: SensorRecord): void;
}

export interface WatchOptions {
  policy: RuntimePolicy;
  sink: RecordSink;
  capture?: Partial<CaptureOptions>;
  /** Our own PID in the namespace; our process tree is never reported. */
  selfPid?: number;
}

export interface Watch {
  stop(): Promise<void>;
}

/** Decides, per capture event, which records to emit. No I/O of its own. */
export class WatchPipeline {
  private readonly tracker: ProcessTracker;
  private readonly reportedCauses = new Set<string>();
  private readonly policy: RuntimePolicy;
  private readonly clock: BootClock;

  constructor(policy: RuntimePolicy, clock: BootClock, selfPid: number) {
    this.policy = policy;
    this.clock = clock;
    this.tracker = new ProcessTracker(selfPid);
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
        return [...this.problems(event.snapshot), ...this.processRecords(event)];
      case "exit":
        return this.processRecords(event);
    }
  }

  private processRecords(event: CaptureEvent): SensorRecord[] {
    const records: SensorRecord[] = [];
    for (const processEvent of this.tracker.handle(event)) {
      const record = processRecord(processEvent, this.clock, this.policy.spec.forensics);
      if (record !== undefined) records.push(record);
    }
    return records;
  }

  private problems(snapshot: Extract<CaptureEvent, { type: "spawn" }>["snapshot"]): SensorRecord[] {
    const records: SensorRecord[] = [];
    for (const problem of snapshot.problems) {
      const cause = readProblemCause(problem);
      if (this.reportedCauses.has(cause)) continue;
      this.reportedCauses.add(cause);
      records.push(readProblemRecord(problem, snapshot.pid));
    }
    return records;
  }
}

export function startWatch(options: WatchOptions): Watch {
  const capture = { ...defaultCaptureOptions, ...options.capture };
  const pipeline = new WatchPipeline(options.policy, readBootClock(capture.procRoot), options.selfPid ?? process.pid);
  const { policy, sink } = options;
  sink.emit(
    statusRecord("INFO", `microenforcer watching this PID namespace with policy ${policy.metadata.name} (${policy.spec.enforcementMode})`, {
      "microenforcer.policy.name": policy.metadata.name,
      "microenforcer.policy.mode": policy.spec.enforcementMode,
    }),
  );
  const sensor = new ProcessSensor(capture, (events) => {
    for (const event of events) for (const record of pipeline.handle(event)) sink.emit(record);
  });
  return { stop: () => sensor.stop() };
}
