/**
 * The loss ledger on disk, beside the spool: a sidecar killed (OOM, SIGKILL) before it
 * could report what it had to drop reports it after its restart. Written at most every
 * 100 ms, by an atomic rename, so a crash forgets at most the counts of its last 100 ms;
 * removed once the losses are reported (their report is then a record like any other).
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LedgerState } from "./loss-ledger.ts";

export const LOSS_FILE = "losses.json";
const WRITE_INTERVAL_MILLIS = 100;

export class LossStore {
  readonly #file: string;
  readonly #warn: (message: string) => void;
  #state: (() => LedgerState) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastWrite = Number.NEGATIVE_INFINITY;

  constructor(dir: string, warn: (message: string) => void) {
    this.#file = join(dir, LOSS_FILE);
    this.#warn = warn;
  }

  /** What a previous run left, parsed; undefined when nothing (or nothing readable) is there. */
  load(): unknown {
    try {
      return JSON.parse(readFileSync(this.#file, "utf8"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.#warn(`cannot read ${this.#file} (${(error as Error).message}); a previous run's loss counts are not reported`);
      return undefined;
    }
  }

  /** Keeps the ledger's state, soon; an empty state removes the file. */
  save(state: () => LedgerState): void {
    this.#state = state;
    if (this.#timer !== undefined) return;
    const wait = this.#lastWrite + WRITE_INTERVAL_MILLIS - Date.now();
    if (wait <= 0) this.#write();
    else this.#timer = setTimeout(() => this.#write(), wait).unref();
  }

  /** Writes what is pending now (shutdown). */
  flush(): void {
    if (this.#timer !== undefined) this.#write();
  }

  #write(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastWrite = Date.now();
    const state = this.#state?.() ?? {};
    try {
      if (Object.keys(state).length === 0) {
        unlinkSync(this.#file);
      } else {
        writeFileSync(`${this.#file}.tmp`, JSON.stringify(state));
        renameSync(`${this.#file}.tmp`, this.#file);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.#warn(`cannot write ${this.#file} (${(error as Error).message}); loss counts would not survive a crash`);
    }
  }
}
