/** A policy finding as a record: what matched, which process, and what was done about it. */
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { Violation } from "../policy/engine.ts";
import type { BootClock } from "../proc/boot-clock.ts";
import { ancestryAttributes, processAttributes } from "./process-records.ts";
import { Attr } from "./attributes.ts";
import { EventNames, type SensorRecord } from "./record.ts";
import { ruleAttributes } from "./security-rule.ts";

export function violationRecord(v: Violation, policy: RuntimePolicy, clock: BootClock): SensorRecord {
  const attributes = v.process === undefined ? {} : { ...processAttributes(v.process, clock, policy.spec.forensics), ...ancestryAttributes(v.process) };
  attributes[Attr.policyName] = policy.metadata.name;
  attributes[Attr.policyMode] = policy.spec.enforcementMode;
  attributes[Attr.control] = v.finding.control;
  attributes[Attr.rule] = v.finding.rule;
  attributes[Attr.action] = v.action;
  Object.assign(attributes, ruleAttributes(policy, v.finding));
  if (v.enforcementLatencyMs !== undefined) attributes[Attr.enforcementLatencyMs] = Math.round(v.enforcementLatencyMs * 1000) / 1000;
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
