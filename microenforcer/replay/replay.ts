/**
 * Replays recorded activity through a policy: the sensor's own PolicyEngine and controls,
 * one engine per pod as each sidecar has its own, fed the facts rebuilt from the records,
 * in the order given. The engine's kills go to an enforcer that only says what it would
 * have done. Controls whose facts are not recorded are named, not approximated: drift
 * where a record lacks the executable's change time is not checked (the engine's /proc
 * read of it fails here, as for a process already gone), and said so in a note.
 */
import type { RuntimePolicy } from "../../policies/schema.ts";
import { mayKill, type Enforcer } from "../enforce/kill.ts";
import { PolicyEngine, type Action, type FactSource, type Violation } from "../policy/engine.ts";
import { PolicyHolder } from "../policy/policy-holder.ts";
import type { ControlName } from "../policy/process-controls.ts";
import { joinCommandLine } from "../proc/parse.ts";
import { Attr } from "../records/attributes.ts";
import { EventNames } from "../records/record.ts";
import { NOT_RECORDED, recordedClock, recordedConnection, recordedPreload, recordedProcess } from "./recorded-facts.ts";
import type { RecordedRecord } from "./recorded.ts";

export interface Example {
  observedMs: number;
  /** The pod (namespace/name) or other source the record came from. */
  source: string;
  /** What the finding says, and about which process. */
  text: string;
  /** The process's command line, when recorded. */
  command?: string;
}

export interface RuleOutcome {
  control: ControlName;
  rule: string;
  findings: number;
  /** Findings by what the sensor would have done: alert, killed, gone (nothing left to kill), denied (PID 1). */
  actions: Partial<Record<Action, number>>;
  examples: Example[];
}

export interface ReplayResult {
  policy: { name: string; mode: "audit" | "enforce" };
  records: {
    read: number;
    /** Records seen twice (at-least-once delivery, or the same export given twice), replayed once. */
    duplicates: number;
    exec: number;
    exit: number;
    connection: number;
    listen: number;
    sources: string[];
    firstMs?: number;
    lastMs?: number;
  };
  rules: RuleOutcome[];
  /** Distinct processes the policy would have killed. */
  processesKilled: number;
  /** Controls of the policy that cannot be replayed, why, and how many findings of them the records hold from the policy then running. */
  notReplayed: Array<{ control: ControlName; why: string; recordedFindings: number }>;
  /** Limits of this replay that depend on what was recorded. */
  notes: string[];
}

/** Would the policy act (kill, or block what has nothing left to kill)? */
export const isBlocking = (action: Action): boolean => action !== "alert";

const facts: FactSource = { stdio: () => undefined, denial: () => undefined };

/** Says what it would do; never signals anything. */
const wouldKill: Enforcer = { kill: (pid) => (mayKill(pid) ? "killed" : "denied") };

const examplesPerRule = 3;

/** One pod's replay, as its sidecar had it: its engine, and its containers' init start (drift). */
interface PodReplay {
  engine: PolicyEngine;
  label: string;
  containerStarts: Map<string, number>;
}

export class PolicyReplay {
  private readonly policy: RuntimePolicy;
  private readonly holder: PolicyHolder;
  private readonly engines = new Map<string, PodReplay>();
  private readonly ids = new Set<string>();
  private readonly outcomes = new Map<string, RuleOutcome>();
  private readonly killed = new Set<string>();
  private readonly recordedFindings = new Map<string, number>();
  private readonly counts: ReplayResult["records"] = { read: 0, duplicates: 0, exec: 0, exit: 0, connection: 0, listen: 0, sources: [] };
  private sessionsWithoutArgs = 0;
  private execsWithoutChangeTime = 0;
  private namedConnections = 0;
  /** Observed time of the record being replayed: the engine's clock. */
  private now = 0;

  constructor(policy: RuntimePolicy) {
    this.policy = policy;
    this.holder = new PolicyHolder(policy);
  }

  add(record: RecordedRecord): void {
    const c = this.counts;
    c.read++;
    const id = record.attributes[Attr.logRecordUid] ?? record.attributes[Attr.recordId];
    if (typeof id === "string") {
      if (this.ids.has(id)) {
        c.duplicates++;
        return;
      }
      this.ids.add(id);
    }
    this.now = record.observedMs;
    c.firstMs = Math.min(c.firstMs ?? Infinity, record.observedMs);
    c.lastMs = Math.max(c.lastMs ?? -Infinity, record.observedMs);
    const { engine, label, containerStarts } = this.engineFor(record.resource);
    const a = record.attributes;
    const p = recordedProcess(a);
    switch (record.eventName) {
      case EventNames.processExec: {
        c.exec++;
        if (p === undefined) return;
        if (p.origin === "exec-session" && p.args === undefined) this.sessionsWithoutArgs++;
        // As the tracker knows it: the start of the container's current init.
        if (p.origin === "container-init" && p.container.name !== undefined) containerStarts.set(p.container.name, p.startTicks);
        if (p.exe !== undefined && !p.exe.memfd && p.exeFile === undefined) this.execsWithoutChangeTime++;
        const start = p.container.name === undefined ? undefined : containerStarts.get(p.container.name);
        this.collect(engine.onExec(p, record.observedMs, start, false, recordedPreload(a)).violations, label);
        return;
      }
      case EventNames.processExit:
        c.exit++;
        if (p !== undefined) engine.onExit(p);
        return;
      case EventNames.networkConnection:
      case EventNames.networkListen: {
        if (record.eventName === EventNames.networkListen) c.listen++;
        else c.connection++;
        const connection = recordedConnection(record.eventName, a);
        if (connection === undefined) return;
        if (connection.dnsName !== undefined) this.namedConnections++;
        const result = p !== undefined ? engine.onConnection(p, connection, record.observedMs) : engine.onUnattributedConnection(connection, record.observedMs);
        this.collect(result.violations, label);
        return;
      }
      case EventNames.policyViolation: {
        const control = String(a[Attr.control]);
        this.recordedFindings.set(control, (this.recordedFindings.get(control) ?? 0) + 1);
        return;
      }
    }
  }

  result(): ReplayResult {
    const controls = this.policy.spec.controls ?? {};
    const present = (Object.keys(controls) as ControlName[]).filter((name) => name !== "portScan" || controls.portScan?.detect);
    const notReplayed = present.flatMap((control) => {
      const why = NOT_RECORDED[control];
      return why === undefined ? [] : [{ control, why, recordedFindings: this.recordedFindings.get(control) ?? 0 }];
    });
    return {
      policy: { name: this.policy.metadata.name, mode: this.policy.spec.enforcementMode },
      records: { ...this.counts, sources: [...this.engines.values()].map((e) => e.label) },
      rules: [...this.outcomes.values()],
      processesKilled: this.killed.size,
      notReplayed,
      notes: this.notes(present),
    };
  }

  private notes(present: ControlName[]): string[] {
    const notes: string[] = [];
    const c = this.counts;
    const processControls = present.filter((x) => ["containerExec", "executables", "filelessExec", "drift", "preloadEvasion"].includes(x));
    if (processControls.length > 0 && c.exec === 0) {
      notes.push(`no process exec records (was forensics.processActivity off?): nothing to replay for ${processControls.join(", ")}`);
    }
    const networkControls = present.filter((x) => x === "network" || x === "portScan");
    if (networkControls.length > 0 && c.connection + c.listen === 0) {
      notes.push(`no connection or listen records (was forensics.networkActivity off?): nothing to replay for ${networkControls.join(", ")}`);
    }
    if (present.includes("drift") && this.execsWithoutChangeTime > 0) {
      notes.push(
        `drift was checked only where the executable's change time was recorded (the sensor could not read it for the others: see microenforcer.process.unread); ${this.execsWithoutChangeTime} execs without it were not`,
      );
    }
    if (present.includes("containerExec") && this.sessionsWithoutArgs > 0) {
      notes.push(
        `${this.sessionsWithoutArgs} exec sessions were recorded without their arguments (forensics.fullCommandArguments off): containerExec.allowedCommands matched their executable only, not argv[0]`,
      );
    }
    const domainRules = (this.policy.spec.controls?.network?.blockedOutbound ?? []).filter((r) => r.domain !== undefined).length;
    if (domainRules > 0 && c.connection > 0 && this.namedConnections === 0) {
      notes.push(`${domainRules} blockedOutbound rules need DNS names, and no connection record carries one (was spec.dns off?)`);
    }
    if (this.policy.spec.scope !== undefined) notes.push("spec.scope is not applied: every record given is replayed");
    return notes;
  }

  private engineFor(resource: Record<string, unknown>): PodReplay {
    const uid = resource["k8s.pod.uid"];
    const pod = resource["k8s.pod.name"];
    const namespace = resource["k8s.namespace.name"];
    const label = pod !== undefined ? `${namespace === undefined ? "" : `${String(namespace)}/`}${String(pod)}` : String(resource["host.name"] ?? "(no pod)");
    const key = uid !== undefined ? `uid:${String(uid)}` : `label:${label}`;
    let entry = this.engines.get(key);
    if (entry === undefined) {
      entry = { engine: new PolicyEngine(this.holder, { facts, enforcer: wouldKill, clock: recordedClock, now: () => this.now }), label, containerStarts: new Map() };
      this.engines.set(key, entry);
    }
    return entry;
  }

  private collect(violations: Violation[], source: string): void {
    for (const { finding, process: p, action, observedAt } of violations) {
      const k = `${finding.control}\u0000${finding.rule}`;
      let outcome = this.outcomes.get(k);
      if (outcome === undefined) {
        outcome = { control: finding.control, rule: finding.rule, findings: 0, actions: {}, examples: [] };
        this.outcomes.set(k, outcome);
      }
      outcome.findings++;
      outcome.actions[action] = (outcome.actions[action] ?? 0) + 1;
      if (action === "killed" && p !== undefined) this.killed.add(`${source}\u0000${p.pid}\u0000${p.startTicks}`);
      if (outcome.examples.length < examplesPerRule) {
        const text = `${finding.control}: ${finding.reason} (${p === undefined ? "unattributed" : `pid ${p.pid}`})`;
        // Arguments as recorded: already redacted by the sensor.
        const command = p?.args === undefined ? undefined : joinCommandLine(p.args);
        outcome.examples.push({ observedMs: observedAt, source, text, ...(command !== undefined && { command }) });
      }
    }
  }
}
