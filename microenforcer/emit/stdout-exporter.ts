import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { LogRecordExporter, ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { formatJson, formatPretty } from "./format.ts";

export type StdoutFormat = "json" | "pretty";

/** Writes one line per log record; Fargate ships the container's stdout as is. */
export class StdoutLogRecordExporter implements LogRecordExporter {
  readonly #out: NodeJS.WritableStream;
  readonly #format: (record: ReadableLogRecord) => string;

  constructor(options: { out: NodeJS.WritableStream; format: StdoutFormat; color: boolean }) {
    this.#out = options.out;
    this.#format = options.format === "json" ? formatJson : (record) => formatPretty(record, { color: options.color });
  }

  export(records: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    try {
      // One write per batch keeps each line whole even when other code shares the stream.
      this.#out.write(records.map((record) => `${this.#format(record)}\n`).join(""));
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
