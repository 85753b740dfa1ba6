/**
 * One OTLP export attempt per call, its answer classified (export-outcome.ts). Retrying,
 * ordering and spooling are the delivery's job, so the transports never retry by
 * themselves — unlike the SDK's exporters, which retry inside an export and then lose the
 * batch, and which hide partial success in a diagnostic log line.
 *
 * Endpoint, headers, timeout, TLS files and compression come from the standard
 * OTEL_EXPORTER_OTLP_* variables, read by the SDK's own configuration functions.
 */
import type { IExportLogsServiceResponse, ISerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { PartialSuccess, SendOutcome } from "./export-outcome.ts";

export interface OtlpTransport {
  /** One attempt; never rejects. */
  send(records: ReadableLogRecord[]): Promise<SendOutcome>;
  shutdown(): void;
}

export type LogsSerializer = ISerializer<ReadableLogRecord[], IExportLogsServiceResponse>;

/** The partial_success of a success answer; a body we cannot read still means success. */
export function readPartialSuccess(serializer: LogsSerializer, body: Uint8Array | undefined): PartialSuccess | undefined {
  try {
    return body === undefined || body.length === 0 ? undefined : serializer.deserializeResponse(body).partialSuccess;
  } catch {
    return undefined;
  }
}
