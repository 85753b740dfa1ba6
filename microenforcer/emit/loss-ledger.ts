/**
 * Every record the delivery had to give up on, by cause and event kind, until it is
 * reported: one `microenforcer.sensor.status` record per cause, sent once the backend is
 * reachable again, so the audit trail itself says exactly what it is missing.
 */
import { EventNames, type Attributes, type SensorRecord } from "../records/record.ts";
import type { Refusal } from "../spool/backlog.ts";

/** A backlog's refusals, what the backend refused for good, and damaged spool lines. */
export type LossReason = Refusal["reason"] | "rejected" | "corrupt";

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

/** A ledger as JSON (what LossStore keeps on disk). */
export type LedgerState = Partial<Record<LossReason, { count: number; byEvent: Record<string, number>; since: number; until: number; detail: string }>>;

const REASONS = Object.keys(WHY) as LossReason[];

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

  state(): LedgerState {
    const state: LedgerState = {};
    for (const [reason, tally] of this.#tallies) state[reason] = { ...tally, byEvent: Object.fromEntries(tally.byEvent) };
    return state;
  }

  /** Adds the losses of a previous run's state; what does not look like one is ignored. Returns the records counted. */
  restore(state: unknown): number {
    if (typeof state !== "object" || state === null) return 0;
    let restored = 0;
    for (const reason of REASONS) {
      const previous = (state as Record<string, unknown>)[reason] as LedgerState[LossReason];
      if (!isTally(previous) || previous.count === 0) continue;
      const tally = this.#tallies.get(reason) ?? { count: 0, byEvent: new Map<string, number>(), since: previous.since, until: previous.until, detail: "" };
      tally.count += previous.count;
      for (const [eventName, count] of Object.entries(previous.byEvent)) tally.byEvent.set(eventName, (tally.byEvent.get(eventName) ?? 0) + count);
      tally.since = Math.min(tally.since, previous.since);
      tally.until = Math.max(tally.until, previous.until);
      tally.detail = tally.detail === "" ? `${previous.detail}; counted by a previous run of the sidecar` : tally.detail;
      this.#tallies.set(reason, tally);
      restored += previous.count;
    }
    return restored;
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

function isTally(value: LedgerState[LossReason]): value is NonNullable<LedgerState[LossReason]> {
  const counts = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  return (
    typeof value === "object" &&
    value !== null &&
    counts(value.count) &&
    typeof value.since === "number" &&
    typeof value.until === "number" &&
    typeof value.detail === "string" &&
    typeof value.byEvent === "object" &&
    value.byEvent !== null &&
    Object.values(value.byEvent).every(counts) &&
    Object.values(value.byEvent).reduce((a, b) => a + b, 0) <= value.count
  );
}

/** Loss reports themselves are never refused: they are what makes a loss visible. */
export function isLossReport(attributes: Readonly<Record<string, unknown>>): boolean {
  return attributes[LOSS_REASON] !== undefined;
}
