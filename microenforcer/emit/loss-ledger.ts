/**
 * Every record the delivery had to give up on, by cause and event kind, until it is
 * reported: one `microenforcer.sensor.status` record per cause, sent once the backend is
 * reachable again, so the audit trail itself says exactly what it is missing.
 */
import { EventNames, type Attributes, type SensorRecord } from "../records/record.ts";

export type LossReason = "spool_full" | "memory_full" | "spool_error" | "rejected" | "corrupt";

export interface Refusal {
  reason: LossReason;
  /** What the cause looked like (a size limit, an errno, the backend's message). */
  detail: string;
}

interface Tally {
  count: number;
  /** Event name → count; records whose kind cannot be known (damaged lines, partial success) are not here. */
  byEvent: Map<string, number>;
  since: number;
  until: number;
  detail: string;
}

const EVENT_PREFIX = "microenforcer.";
export const LOSS_REASON = "microenforcer.loss.reason";

const WHY: Readonly<Record<LossReason, string>> = {
  spool_full: "the spool was full",
  memory_full: "no spool directory, and the in-memory backlog was full",
  spool_error: "the spool could not be written",
  rejected: "the OTLP backend rejected them",
  corrupt: "spool lines were damaged (torn by a crash or corrupted on disk)",
};

export class LossLedger {
  readonly #tallies = new Map<LossReason, Tally>();

  add(reason: LossReason, eventName: string | undefined, count: number, at: number, detail: string): void {
    if (count <= 0) return;
    let tally = this.#tallies.get(reason);
    if (tally === undefined) {
      tally = { count: 0, byEvent: new Map(), since: at, until: at, detail };
      this.#tallies.set(reason, tally);
    }
    tally.count += count;
    tally.until = at;
    tally.detail = detail;
    if (eventName !== undefined) tally.byEvent.set(eventName, (tally.byEvent.get(eventName) ?? 0) + count);
  }

  get isEmpty(): boolean {
    return this.#tallies.size === 0;
  }

  /** The losses so far as status records; the ledger starts over. */
  take(): SensorRecord[] {
    const records = [...this.#tallies].map(([reason, tally]) => lossRecord(reason, tally));
    this.#tallies.clear();
    return records;
  }
}

export function lossRecord(reason: LossReason, tally: Tally): SensorRecord {
  const kinds = [...tally.byEvent].sort(([a], [b]) => a.localeCompare(b));
  const attributes: Attributes = {
    [LOSS_REASON]: reason,
    "microenforcer.loss.count": tally.count,
    "microenforcer.loss.since": new Date(tally.since).toISOString(),
    "microenforcer.loss.until": new Date(tally.until).toISOString(),
    "microenforcer.loss.detail": tally.detail,
  };
  for (const [eventName, count] of kinds) attributes[`microenforcer.loss.by_event.${eventName.replace(EVENT_PREFIX, "")}`] = count;
  const known = kinds.reduce((sum, [, count]) => sum + count, 0);
  const parts = kinds.map(([eventName, count]) => `${count} ${eventName.replace(EVENT_PREFIX, "")}`);
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
  return attributes[LOSS_REASON] !== undefined;
}
