/**
 * The delivery's losses, accounted for: counted by cause and event kind (loss-ledger.ts),
 * kept beside the spool until reported (loss-store.ts), reported in status records at most
 * every 10 s once the backend answers again, and said once per cause on stderr.
 */
import type { LossReason } from "../records/loss-records.ts";
import type { SensorRecord } from "../records/record.ts";
import { LossLedger } from "./loss-ledger.ts";
import type { LossStore } from "./loss-store.ts";

/** Loss reports at most this often while losses go on; each loss is in exactly one report. */
const REPORT_INTERVAL_MILLIS = 10_000;

export interface LossAccountingOptions {
  /** Loss reports go out through the emitter, to stdout and OTLP like any record. */
  report: (record: SensorRecord) => void;
  warn: (message: string) => void;
  /** Where the counts survive a crash until reported. */
  store?: LossStore;
  now: () => number;
}

export class LossAccounting {
  readonly #options: LossAccountingOptions;
  readonly #ledger = new LossLedger();
  readonly #warned = new Set<LossReason>();
  #lastReport = Number.NEGATIVE_INFINITY;
  /** Given up on by us: the backlog was full, or its lines were damaged. */
  dropped = 0;
  /** Refused for good by the backend. */
  rejected = 0;

  /** Takes over the losses a previous run counted but was killed before reporting. */
  constructor(options: LossAccountingOptions) {
    this.#options = options;
    if (this.#ledger.restore(options.store?.load()) > 0) this.#persist();
  }

  lose(reason: LossReason, eventName: string | undefined, count: number, detail: string): void {
    if (count <= 0) return;
    if (reason === "rejected") this.rejected += count;
    else this.dropped += count;
    this.#ledger.add(reason, eventName, count, this.#options.now(), detail);
    this.#persist();
    if (this.#warned.has(reason)) return;
    this.#warned.add(reason);
    this.#options.warn(`${count} record(s) lost (${reason}: ${detail}); a microenforcer.sensor.status record will say how many of which kind. Later losses are not printed.`);
  }

  /** The backend is reachable: the time to say what was lost, unless it was said less than 10 s ago. */
  backendAnswered(): void {
    const now = this.#options.now();
    if (this.#ledger.isEmpty || now - this.#lastReport < REPORT_INTERVAL_MILLIS) return;
    this.#lastReport = now;
    this.#reportAll();
  }

  /** At shutdown: every loss not reported yet, in records that travel with the rest, and the store written now. */
  flush(): void {
    this.#reportAll();
    this.#options.store?.flush();
  }

  #reportAll(): void {
    for (const record of this.#ledger.take()) this.#options.report(record);
    this.#persist();
  }

  #persist(): void {
    this.#options.store?.save(() => this.#ledger.state());
  }
}
