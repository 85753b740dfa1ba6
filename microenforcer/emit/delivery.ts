/**
 * OTLP delivery that never blocks the sensor and never loses a record silently.
 *
 * Records wait in a bounded memory queue and leave in batches, one export at a time so
 * they arrive in emit order. When an export fails, or the queue is full because the
 * backend falls behind, everything in memory moves to the backlog (the disk spool, see
 * spool/backlog.ts) and every later record follows it there until the backlog is drained: the
 * backlog's front is always the oldest record. The batch in flight at that moment is
 * written first, so it is always the batch at the backlog's read position, and its outcome
 * acknowledges it or leaves it to be read again. Failed exports are retried with backoff
 * and jitter; what the backend refuses for good, or what the backlog cannot take at its
 * cap, is counted by cause and event kind and reported in a status record once the
 * backend answers again (loss-accounting.ts).
 */
import type { LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord } from "@opentelemetry/sdk-logs";
import { isLossReport, type LossReason } from "../records/loss-records.ts";
import type { SensorRecord } from "../records/record.ts";
import type { Backlog, Position } from "../spool/backlog.ts";
import { retryDelay, type RetryPolicy } from "./backoff.ts";
import type { SendOutcome } from "./export-outcome.ts";
import { LossAccounting } from "./loss-accounting.ts";
import type { LossStore } from "./loss-store.ts";
import type { BatchOptions } from "./otlp-config.ts";
import type { OtlpTransport } from "./otlp-transport.ts";

export interface DeliveryOptions {
  transport: OtlpTransport;
  backlog: Backlog;
  batch: BatchOptions;
  retry: RetryPolicy;
  /** How long shutdown keeps trying to deliver before it leaves the rest in the backlog. */
  shutdownTimeoutMillis: number;
  /** Loss reports go out through the emitter, to stdout and OTLP like any record. */
  report: (record: SensorRecord) => void;
  /** Said once per kind of trouble; the counters carry the rest. */
  warn: (message: string) => void;
  /** Where the loss counts survive a crash until reported (beside the spool). */
  lossStore?: LossStore;
  now?: () => number;
  random?: () => number;
}

export interface DeliveryStats {
  /** Accepted by the backend. */
  exported: number;
  /** In memory, in flight or in the backlog. */
  pending: number;
  /** Given up on by us: the backlog was full, or its lines were damaged. */
  dropped: number;
  /** Refused for good by the backend (errors that must not be retried, partial success). */
  rejected: number;
}

interface Batch {
  records: ReadableLogRecord[];
  /** Set when the batch is the backlog's front: acknowledging up to here removes it. */
  end?: Position;
  /** Damaged backlog lines before `end`, lost once the batch is dealt with. */
  corrupt?: number;
}

export class Delivery implements LogRecordProcessor {
  readonly #options: DeliveryOptions;
  readonly #backlog: Backlog;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #losses: LossAccounting;
  #exported = 0;
  #retryWarned = false;
  #queue: ReadableLogRecord[] = [];
  #inFlight: Batch | undefined;
  #delayTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** Halved while the backend says a batch is too large, doubled back on success. */
  #batchLimit: number;
  #flushWaiters: Array<() => void> = [];
  #closing: Promise<void> | undefined;
  #closed = false;

  constructor(options: DeliveryOptions) {
    this.#options = options;
    this.#backlog = options.backlog;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#batchLimit = options.batch.maxExportBatchSize;
    this.#losses = new LossAccounting({ report: options.report, warn: options.warn, store: options.lossStore, now: this.#now });
    if (!this.#backlog.isEmpty()) this.#pump(); // left by the previous run
  }

  /** Losses found before this delivery started (damaged lines of a previous run's spool). */
  recordLoss(reason: LossReason, count: number, detail: string): void {
    this.#losses.lose(reason, undefined, count, detail);
  }

  onEmit(record: ReadWriteLogRecord): void {
    if (this.#closed) return this.#losses.lose("memory_full", record.eventName, 1, "emitted after shutdown");
    if (!this.#backlog.isEmpty()) {
      this.#toBacklog(record);
      return this.#pump();
    }
    if (this.#queue.length >= this.#options.batch.maxQueueSize) {
      this.#spill();
      this.#toBacklog(record);
      return this.#pump();
    }
    this.#queue.push(record);
    if (this.#queue.length >= this.#batchLimit) this.#pump();
    else this.#armDelay();
  }

  /** Resolves when everything is delivered, or the next attempt failed (records wait in the backlog). Never rejects. */
  forceFlush(): Promise<void> {
    if (this.#idle() || this.#closed) return Promise.resolve();
    const flushed = new Promise<void>((resolve) => this.#flushWaiters.push(resolve));
    this.#cancelRetry();
    this.#pump();
    return flushed;
  }

  /**
   * Delivers what it can within shutdownTimeoutMillis (a deleted pod takes its emptyDir
   * along), then moves what is left in memory to the backlog for the next start.
   */
  shutdown(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  stats(): DeliveryStats {
    const inFlight = this.#inFlight !== undefined && this.#inFlight.end === undefined ? this.#inFlight.records.length : 0;
    return { exported: this.#exported, dropped: this.#losses.dropped, rejected: this.#losses.rejected, pending: this.#queue.length + inFlight + this.#backlog.size };
  }

  async #shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.forceFlush(), new Promise((resolve) => (timer = setTimeout(resolve, this.#options.shutdownTimeoutMillis)))]);
    clearTimeout(timer);
    // Unreported losses travel with the records, to be reported by the next start.
    this.#losses.flush();
    this.#closed = true;
    clearTimeout(this.#delayTimer);
    this.#cancelRetry();
    // A batch still in flight may yet arrive: replaying it too is at-least-once, not a loss.
    if (this.#inFlight !== undefined && this.#inFlight.end === undefined) this.#queue.unshift(...this.#inFlight.records);
    this.#inFlight = undefined;
    this.#spill();
    this.#resolveFlushes();
    await this.#backlog.close();
    this.#options.transport.shutdown();
  }

  #idle(): boolean {
    return this.#queue.length === 0 && this.#inFlight === undefined && this.#backlog.isEmpty();
  }

  #toBacklog(record: ReadableLogRecord): void {
    const refusal = this.#backlog.append(record, isLossReport(record.attributes));
    if (refusal !== undefined) this.#losses.lose(refusal.reason, record.eventName, 1, refusal.detail);
  }

  /**
   * Memory to the backlog, in order: the batch in flight from memory first (it becomes the
   * backlog's front), then the queue. The backlog is empty whenever memory holds records.
   */
  #spill(): void {
    if (this.#inFlight !== undefined && this.#inFlight.end === undefined) {
      for (const record of this.#inFlight.records) this.#backlog.append(record, true);
      this.#inFlight.end = this.#backlog.tail();
    }
    for (const record of this.#queue) this.#backlog.append(record, true);
    this.#queue = [];
  }

  #armDelay(): void {
    if (this.#delayTimer !== undefined) return;
    this.#delayTimer = setTimeout(() => {
      this.#delayTimer = undefined;
      this.#pump();
    }, this.#options.batch.scheduledDelayMillis).unref();
  }

  #cancelRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /** Starts the next export unless one is in flight or a retry is waiting. */
  #pump(): void {
    if (this.#inFlight !== undefined || this.#retryTimer !== undefined || this.#closed) return;
    clearTimeout(this.#delayTimer);
    this.#delayTimer = undefined;
    let batch: Batch | undefined;
    try {
      batch = this.#nextBatch();
    } catch (error) {
      return this.#retryLater(`cannot read the spool: ${(error as Error).message}`);
    }
    if (batch === undefined) return this.#resolveFlushes();
    const sent = batch;
    this.#inFlight = sent;
    void this.#options.transport.send(sent.records).then((outcome) => this.#settle(sent, outcome));
  }

  #nextBatch(): Batch | undefined {
    if (this.#queue.length > 0) return { records: this.#queue.splice(0, this.#batchLimit) };
    while (!this.#backlog.isEmpty()) {
      const { records, end, corrupt } = this.#backlog.read(this.#batchLimit);
      if (records.length > 0) return { records, end, corrupt };
      this.#done({ records, end, corrupt }); // only damaged lines there
    }
    return undefined;
  }

  #settle(batch: Batch, outcome: SendOutcome): void {
    if (this.#closed) return; // shutdown moved it to the backlog already
    this.#inFlight = undefined;
    switch (outcome.kind) {
      case "delivered":
        this.#exported += batch.records.length - outcome.rejected;
        this.#losses.lose("rejected", undefined, outcome.rejected, outcome.message ?? "partial success");
        this.#batchLimit = Math.min(this.#options.batch.maxExportBatchSize, this.#batchLimit * 2);
        this.#done(batch);
        this.#backendAnswered();
        break;
      case "rejected":
        this.#reject(batch, outcome.reason);
        this.#backendAnswered();
        break;
      case "too-large":
        if (batch.records.length === 1) {
          this.#reject(batch, outcome.reason);
          this.#backendAnswered();
        } else {
          this.#batchLimit = Math.max(1, Math.floor(batch.records.length / 2));
          if (batch.end === undefined) this.#queue.unshift(...batch.records);
        }
        break;
      case "retry":
        if (batch.end === undefined) {
          this.#queue.unshift(...batch.records);
          this.#spill(); // an outage must not leave records only in memory
        }
        return this.#retryLater(outcome.reason, outcome.afterMillis);
    }
    if (this.#idle()) this.#resolveFlushes();
    else if (this.#queue.length < this.#batchLimit && this.#backlog.isEmpty() && this.#flushWaiters.length === 0) this.#armDelay();
    else this.#pump();
  }

  #retryLater(reason: string, afterMillis?: number): void {
    this.#failures++;
    if (!this.#retryWarned) this.#options.warn(`OTLP export failed (${reason}); records wait in the backlog and are retried with backoff. Later failures are not printed.`);
    this.#retryWarned = true;
    const delay = retryDelay(this.#failures, this.#random(), this.#options.retry, afterMillis);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#pump();
    }, delay).unref();
    this.#resolveFlushes(); // what was to be flushed is safe in the backlog
  }

  #reject(batch: Batch, reason: string): void {
    for (const record of batch.records) this.#losses.lose("rejected", record.eventName, 1, reason);
    this.#done(batch);
  }

  /** The batch is dealt with: acknowledged in the backlog, its damaged lines counted. */
  #done(batch: Batch): void {
    if (batch.end === undefined) return;
    this.#losses.lose("corrupt", undefined, batch.corrupt ?? 0, "checksum or JSON mismatch");
    this.#backlog.ack(batch.end);
  }

  /** The backend is reachable: failures start over, and it is the time to say what was lost. */
  #backendAnswered(): void {
    this.#failures = 0;
    this.#losses.backendAnswered();
  }

  #resolveFlushes(): void {
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
