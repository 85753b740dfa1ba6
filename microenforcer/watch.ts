/**
 * The MicroEnforcer runtime: capture worker → process tracker → records the policy
 * allows, and the policy's controls → violations and enforcement → emitter. The sidecar
 * and `microenforcer watch` are this one program.
 */
import type { RuntimePolicy } from "../policies/schema.ts";
import { defaultCaptureOptions, type CaptureOptions } from "./capture/capture-loop.ts";
import { ProcessSensor } from "./capture/process-sensor.ts";
import { createEnforcer } from "./enforce/kill.ts";
import { DnsService } from "./net/dns-service.ts";
import { WatchPipeline } from "./pipeline/watch-pipeline.ts";
import { networkSensorNeeded, type PolicyHolder } from "./policy/policy-holder.ts";
import { readBootClock } from "./proc/boot-clock.ts";
import { readExeChangeTime, readStdioSockets } from "./proc/process-facts.ts";
import type { SensorRecord } from "./records/record.ts";
import { forwarderRecord, policyStatusRecord } from "./records/sensor-records.ts";

export interface RecordSink {
  emit(record: SensorRecord): void;
}

export interface WatchOptions {
  /** The policy in force; a new one set there applies from the next event on. */
  policy: PolicyHolder;
  sink: RecordSink;
  capture?: Partial<CaptureOptions>;
  selfPid?: number;
}

export interface Watch {
  stop(): Promise<void>;
}

/** How often live interpreters are looked at again for a socket on their stdio. */
const recheckIntervalMs = 50;

export function startWatch(options: WatchOptions): Watch {
  const capture = { ...defaultCaptureOptions, ...options.capture };
  const procRoot = capture.procRoot;
  const dns = new DnsService();
  const { policy, sink } = options;
  const pipeline = new WatchPipeline(policy, {
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
  const emitAll = (records: SensorRecord[]): void => {
    for (const record of records) sink.emit(record);
  };
  sink.emit(policyStatusRecord(policy.current, "microenforcer watching this PID namespace with policy"));
  // Applied in order, so a quick reload cannot overtake a forwarder still starting.
  const applyDns = (next: RuntimePolicy): Promise<void> => dns.apply(next).then((outcomes) => emitAll(outcomes.map(forwarderRecord)));
  let dnsApplied = applyDns(policy.current);
  const sensor = new ProcessSensor(
    capture,
    (events) => {
      for (const event of events) emitAll(pipeline.handle(event));
    },
    networkSensorNeeded(policy.current),
  );
  policy.subscribe((next) => {
    sensor.setNetwork(networkSensorNeeded(next));
    dnsApplied = dnsApplied.then(() => applyDns(next));
    sink.emit(policyStatusRecord(next, "policy reloaded:"));
  });
  const recheck = setInterval(() => emitAll(pipeline.recheck()), recheckIntervalMs);
  return {
    async stop() {
      clearInterval(recheck);
      await sensor.stop();
      emitAll(pipeline.recheck(true));
      await dnsApplied;
      await dns.stop();
    },
  };
}
