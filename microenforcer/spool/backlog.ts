/**
 * Where records wait, in order, while the backend is away or behind: the disk spool
 * (spool.ts) when the sidecar has a spool directory, else a bounded in-memory list.
 * The delivery (emit/delivery.ts) reads batches from the front and acknowledges them once
 * the backend answered.
 */
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";

/** Why a backlog did not take a record: the delivery counts it as lost, by this reason. */
export interface Refusal {
  reason: "spool_full" | "memory_full" | "spool_error";
  /** What the cause looked like (a size limit, an errno). */
  detail: string;
}

/** A place in the backlog: a segment and byte offset for the spool, `index` counts records. */
export interface Position {
  readonly segment: number;
  readonly offset: number;
  readonly index: number;
}

export interface BacklogRead {
  records: ReadableLogRecord[];
  /** Just after the last line read: acknowledge it once these records are dealt with. */
  end: Position;
  /** Damaged lines skipped on the way (counted as lost when acknowledged). */
  corrupt: number;
}

export interface Backlog {
  /** Records not acknowledged yet. */
  readonly size: number;
  isEmpty(): boolean;
  /**
   * Stores the record behind all others; a Refusal when it cannot (the caller counts the
   * loss). `force` ignores the size cap: for records already accepted into memory, and for
   * loss reports.
   */
  append(record: ReadableLogRecord, force: boolean): Refusal | undefined;
  /** Just after the last record stored. */
  tail(): Position;
  /** Up to `max` records from the front, not removed until acknowledged. */
  read(max: number): BacklogRead;
  /** Everything before `end` is dealt with. */
  ack(end: Position): void;
  close(): Promise<void>;
}

/** Without a spool directory: order kept, `capacity` records at most, nothing survives a restart. */
export class MemoryBacklog implements Backlog {
  readonly #capacity: number;
  #records: ReadableLogRecord[] = [];
  /** Index of #records[0] since the backlog was made. */
  #first = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#records.length;
  }

  isEmpty(): boolean {
    return this.#records.length === 0;
  }

  append(record: ReadableLogRecord, force: boolean): Refusal | undefined {
    if (!force && this.#records.length >= this.#capacity) return { reason: "memory_full", detail: `${this.#capacity} records` };
    this.#records.push(record);
    return undefined;
  }

  tail(): Position {
    return at(this.#first + this.#records.length);
  }

  read(max: number): BacklogRead {
    const records = this.#records.slice(0, max);
    return { records, end: at(this.#first + records.length), corrupt: 0 };
  }

  ack(end: Position): void {
    const count = end.index - this.#first;
    if (count <= 0) return;
    this.#records = this.#records.slice(count);
    this.#first = end.index;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function at(index: number): Position {
  return { segment: 0, offset: index, index };
}
