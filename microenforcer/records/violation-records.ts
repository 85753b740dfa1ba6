/** A policy finding as a record: what matched, which process, and what was done about it. */
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { KillOutcome } from "../enforce/kill.ts";
import type { Finding } from "../policy/process-controls.ts";
import type { ProcessInfo } from "../tracker/process-tracker.ts";
import { processAttributes, type BootClock } from "./process-records.ts";
import { EventNames, type SensorRecord } from "./record.ts";

export type Action = "alert" | KillOutcome;

export interface Violation {
  finding: Finding;
  /** Absent for a connection whose process was gone before the sensor saw it. */
  process?: ProcessInfo;
  action: Action;
  /** Sensor saw the process → kill(2) returned. */
  enforcementLatencyMs?: number;
  observedAt: number;
}

export function violationRecord(v: Violation, policy: RuntimePolicy, clock: BootClock): SensorRecord {
  const attributes = v.process === undefined ? {} : processAttributes(v.process, clock, policy.spec.forensics);
  attributes["microenforcer.policy.name"] = policy.metadata.name;
  attributes["microenforcer.policy.mode"] = policy.spec.enforcementMode;
  attributes["microenforcer.control"] = v.finding.control;
  attributes["microenforcer.rule"] = v.finding.rule;
  attributes["microenforcer.action"] = v.action;
  if (v.enforcementLatencyMs !== undefined) attributes["microenforcer.enforcement.latency_ms"] = Math.round(v.enforcementLatencyMs * 1000) / 1000;
  const outcome = v.action === "alert" ? "" : ` — ${v.action}`;
  return {
    eventName: EventNames.policyViolation,
    severity: v.action === "alert" ? "WARN" : "ERROR",
    body: `${v.finding.control}: ${v.finding.reason} (${v.process === undefined ? "unattributed: its process was gone before the sensor saw it" : `pid ${v.process.pid}`})${outcome}`,
    attributes,
    timestamp: v.observedAt,
    observedTimestamp: Date.now(),
  };
}
