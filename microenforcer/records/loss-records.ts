/**
 * The record that says what the delivery had to give up on: one `microenforcer.sensor.status`
 * record per cause, with counts by event kind (emit/loss-ledger.ts keeps the tallies).
 */
import type { Refusal } from "../spool/backlog.ts";
import { Attr, LOSS_BY_EVENT_PREFIX, OWN_PREFIX, type Attributes } from "./attributes.ts";
import { EventNames, type SensorRecord } from "./record.ts";

/** A backlog's refusals, what the backend refused for good, and damaged spool lines. */
export type LossReason = Refusal["reason"] | "rejected" | "corrupt";

const WHY: Readonly<Record<LossReason, string>> = {
  spool_full: "the spool was full",
  memory_full: "no spool directory, and the in-memory backlog was full",
  spool_error: "the spool could not be written",
  rejected: "the OTLP backend rejected them",
  corrupt: "spool lines were damaged (torn by a crash or corrupted on disk)",
};

export const LOSS_REASONS = Object.keys(WHY) as LossReason[];

/** Records lost for one reason over a span of time. */
export interface LossTally {
  count: number;
  /** Event name → count; records whose kind cannot be known (damaged lines, partial success) are not here. */
  byEvent: ReadonlyMap<string, number>;
  since: number;
  until: number;
  detail: string;
}

export function lossRecord(reason: LossReason, tally: LossTally): SensorRecord {
  const kinds = [...tally.byEvent].sort(([a], [b]) => a.localeCompare(b));
  const attributes: Attributes = {
    [Attr.lossReason]: reason,
    [Attr.lossCount]: tally.count,
    [Attr.lossSince]: new Date(tally.since).toISOString(),
    [Attr.lossUntil]: new Date(tally.until).toISOString(),
    [Attr.lossDetail]: tally.detail,
  };
  for (const [eventName, count] of kinds) attributes[`${LOSS_BY_EVENT_PREFIX}${eventName.replace(OWN_PREFIX, "")}`] = count;
  const known = kinds.reduce((sum, [, count]) => sum + count, 0);
  const parts = kinds.map(([eventName, count]) => `${count} ${eventName.replace(OWN_PREFIX, "")}`);
  if (known < tally.count) parts.push(`${tally.count - known} of unknown kind`);
  return {
    eventName: EventNames.sensorStatus,
    severity: "ERROR",
    body: `${tally.count} audit record(s) lost because ${WHY[reason]} (${tally.detail}): ${parts.join(", ")}`,
    attributes,
    timestamp: tally.until,
  };
}

/** Loss reports themselves are never refused: they are what makes a loss visible. */
export function isLossReport(attributes: Readonly<Record<string, unknown>>): boolean {
  return attributes[Attr.lossReason] !== undefined;
}
