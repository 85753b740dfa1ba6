/**
 * Every record the delivery had to give up on, by cause and event kind, until it is
 * reported: one `microenforcer.sensor.status` record per cause (records/loss-records.ts),
 * sent once the backend is reachable again, so the audit trail itself says exactly what it
 * is missing.
 */
import { LOSS_REASONS, lossRecord, type LossReason, type LossTally } from "../records/loss-records.ts";
import type { SensorRecord } from "../records/record.ts";

interface Tally extends LossTally {
  byEvent: Map<string, number>;
}

/** A ledger as JSON (what LossStore keeps on disk). */
export type LedgerState = Partial<Record<LossReason, { count: number; byEvent: Record<string, number>; since: number; until: number; detail: string }>>;

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
    for (const reason of LOSS_REASONS) {
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
