import type { LogRecordProcessor, ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { formatJson, formatPretty } from "./format.ts";

export type StdoutFormat = "json" | "pretty";

/**
 * Writes one line per log record, as it is emitted; Fargate ships the container's stdout
 * as is. A processor rather than an exporter behind the SDK's SimpleLogRecordProcessor,
 * which keeps every record alive in a promise until the emitting task ends: 5 000
 * connections reported in one task held 60 MB of heap that way. Writes to files and (on
 * Linux) pipes are synchronous, so nothing waits in memory here.
 */
export class StdoutLogRecordProcessor implements LogRecordProcessor {
  readonly #out: NodeJS.WritableStream;
  readonly #format: (record: ReadableLogRecord) => string;

  constructor(options: { out: NodeJS.WritableStream; format: StdoutFormat; color: boolean }) {
    this.#out = options.out;
    this.#format = options.format === "json" ? formatJson : (record) => formatPretty(record, { color: options.color });
  }

  onEmit(record: ReadableLogRecord): void {
    // One write per line keeps each line whole even when other code shares the stream.
    this.#out.write(`${this.#format(record)}\n`);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
