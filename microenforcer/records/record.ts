/**
 * The sensor's output contract: every finding the sidecar makes is one SensorRecord,
 * turned into one OpenTelemetry log record by the emitter. Its attribute keys are in
 * attributes.ts.
 */
import type { Attributes } from "./attributes.ts";

export const EventNames = {
  processExec: "microenforcer.process.exec",
  processExit: "microenforcer.process.exit",
  networkConnection: "microenforcer.network.connection",
  networkListen: "microenforcer.network.listen",
  policyViolation: "microenforcer.policy.violation",
  sensorGap: "microenforcer.sensor.gap",
  sensorStatus: "microenforcer.sensor.status",
  sensorHeartbeat: "microenforcer.sensor.heartbeat",
  /** The injector's: a `kubectl exec`, `attach` or `debug` seen at admission (webhook/exec-record.ts). */
  k8sExec: "microenforcer.k8s.exec",
} as const;

export type EventName = (typeof EventNames)[keyof typeof EventNames];

/** INFO for activity, WARN for audit-mode violations, ERROR for enforced ones. */
export type Severity = "DEBUG" | "INFO" | "WARN" | "ERROR";

export interface SensorRecord {
  eventName: EventName;
  severity: Severity;
  /** One human sentence; the attributes carry the data. */
  body: string;
  attributes: Attributes;
  /** When it happened (ms since the epoch, fractions allowed). */
  timestamp: number;
  /** When the sensor saw it (ms since the epoch); defaults to the emit time. */
  observedTimestamp?: number;
}
