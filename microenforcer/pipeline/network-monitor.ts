/**
 * The main-thread half of the network sensor: joins what the capture worker observed with
 * the owning process's facts and the peer's DNS name, runs the network controls, and
 * builds the records the policy asks for.
 *
 * An observation may arrive before its owner's exec record (a fork held back until its
 * exec): it waits for it, up to ownerWaitMs. In reverse-lookup mode an outbound connection
 * waits up to nameWaitMs for the peer's name; the controls run at once all the same, and
 * again with the name.
 */
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { NetworkObservation } from "../net/connection-reporter.ts";
import type { PeerName, PeerNames } from "../net/dns-names.ts";
import type { NetworkSample } from "../net/network-sampler.ts";
import type { EngineResult, PolicyEngine } from "../policy/engine.ts";
import { connectionFacts } from "../policy/network-controls.ts";
import type { PolicyHolder } from "../policy/policy-holder.ts";
import type { BootClock } from "../proc/boot-clock.ts";
import { networkRecord } from "../records/network-records.ts";
import type { SensorRecord } from "../records/record.ts";
import { malformedTablesRecord } from "../records/sensor-records.ts";
import { violationRecord } from "../records/violation-records.ts";
import type { ProcessTable } from "../tracker/process-table.ts";
import type { ProcessEvent, ProcessInfo } from "../tracker/process-tracker.ts";

export interface MonitorDeps {
  engine: PolicyEngine;
  clock: BootClock;
  /** Our own PID: the sidecar's own connections (export, DNS forwarding) are not reported. */
  selfPid: number;
  policy: PolicyHolder;
  /** The tracker's processes, exited ones for a while: whose sockets these are. */
  processes: ProcessTable;
  names: () => PeerNames | undefined;
  now: () => number;
}

/** Records in order, and what could not be read (reported once per cause by the pipeline). */
export interface MonitorResult {
  records: SensorRecord[];
  problems: EngineResult["problems"];
}

const ownerWaitMs = 2000;
const nameWaitMs = 1500;

interface Waiting {
  observation: NetworkObservation;
  observedAt: number;
  process?: ProcessInfo;
  /** Controls already ran without a name. */
  checked: boolean;
}

export class NetworkMonitor {
  private readonly deps: MonitorDeps;
  private waiting: Waiting[] = [];
  private malformedReported = false;

  /** Connections wait for an owner or a name: flush() has work. */
  get hasWaiting(): boolean {
    return this.waiting.length > 0;
  }

  constructor(deps: MonitorDeps) {
    this.deps = deps;
  }

  /** A process the tracker reported: connections that waited for it go ahead. */
  onProcess(event: ProcessEvent): MonitorResult {
    if (event.kind === "exit") return empty();
    const p = event.process;
    return this.reconsider((w) => w.observation.owner?.pid === p.pid);
  }

  handle(sample: NetworkSample, observedAt: number): MonitorResult {
    const result = empty();
    for (const { pid, code, denial } of sample.problems) {
      // The refusal's own read of the process is fresher than its exec's (a worker that dropped root since).
      const uid = denial?.target.uid ?? this.deps.processes.latestOf(pid)?.euid ?? -1;
      result.problems.push({ problem: { file: "fd", code, uid, ...(denial !== undefined ? { denial } : {}) }, pid });
    }
    if (sample.malformed > 0 && !this.malformedReported) {
      this.malformedReported = true;
      result.records.push(malformedTablesRecord(sample.malformed));
    }
    for (const observation of sample.observations) {
      if (observation.owner?.pid === this.deps.selfPid) continue;
      merge(result, this.decide({ observation, observedAt, checked: false }));
    }
    return result;
  }

  /** Gives up waiting where the time is up (or everywhere: `final`), and goes ahead where a name arrived. */
  flush(final = false): MonitorResult {
    return this.reconsider(() => true, final);
  }

  private reconsider(which: (w: Waiting) => boolean, final = false): MonitorResult {
    const result = empty();
    const retried = this.waiting.filter(which);
    this.waiting = this.waiting.filter((w) => !which(w));
    for (const w of retried) merge(result, this.decide(w, final));
    return result;
  }

  private decide(w: Waiting, final = false): MonitorResult {
    const result = empty();
    const { observation: o, observedAt } = w;
    const now = final ? Infinity : this.deps.now();
    const owner = o.owner;
    if (owner !== undefined && w.process === undefined) {
      const p = this.deps.processes.owner(owner.pid, owner.startTicks);
      if (p !== undefined) w.process = p;
      else if (now - observedAt < ownerWaitMs) return this.wait(w);
    }
    const name = o.kind === "connection" && o.direction === "outbound" ? this.deps.names()?.lookup(o.socket.remoteAddress, this.deps.now()) : undefined;
    const settled = name !== "pending" || now - observedAt >= nameWaitMs;
    const known = name === "pending" ? undefined : name;
    // Controls first: enforcement must not wait for a name or for record building.
    if (!w.checked || known !== undefined) {
      const facts = connectionFacts(o, known);
      const found = w.process !== undefined ? this.deps.engine.onConnection(w.process, facts, observedAt) : this.deps.engine.onUnattributedConnection(facts, observedAt);
      merge(result, { records: found.violations.map((v) => violationRecord(v, this.deps.policy.current, this.deps.clock)), problems: found.problems });
      w.checked = true;
    }
    if (!settled) {
      merge(result, this.wait(w));
      return result;
    }
    const policy = this.deps.policy.current;
    if (policy.spec.forensics.networkActivity) result.records.unshift(this.record(w, known, policy));
    return result;
  }

  private record(w: Waiting, name: PeerName | undefined, policy: RuntimePolicy): SensorRecord {
    return networkRecord(
      { observation: w.observation, observedAt: w.observedAt, ...(w.process !== undefined && { process: w.process }), ...(name !== undefined && { name }) },
      this.deps.clock,
      policy.spec.forensics,
    );
  }

  private wait(w: Waiting): MonitorResult {
    this.waiting.push(w);
    return empty();
  }
}

function empty(): MonitorResult {
  return { records: [], problems: [] };
}

function merge(into: MonitorResult, from: MonitorResult): void {
  into.records.push(...from.records);
  into.problems.push(...from.problems);
}
