/**
 * What one OTLP export attempt means for the batch, decided from what the backend (or the
 * network) answered, as the OTLP specification says: retry only what may succeed later,
 * never retry a partial success, and never retry what the backend refused for good.
 */

export type SendOutcome =
  /** Accepted; `rejected` of them were refused inside a partial success and must not be retried. */
  | { kind: "delivered"; rejected: number; message?: string }
  /** Try the same batch again later (`afterMillis`: the backend's Retry-After). */
  | { kind: "retry"; reason: string; afterMillis?: number }
  /** Refused for good: counted as lost, never retried. */
  | { kind: "rejected"; reason: string }
  /** Too large for the backend: send it in smaller batches; a single record is rejected. */
  | { kind: "too-large"; reason: string };

/** OTLP/HTTP: 429, 502, 503 and 504 are retryable; any other error status is final. */
const RETRYABLE_HTTP = new Set([429, 502, 503, 504]);

export function httpOutcome(status: number, retryAfter: string | undefined, body: string, nowMillis: number): SendOutcome {
  const reason = `HTTP ${status}${body.trim() === "" ? "" : `: ${body.trim().slice(0, 200)}`}`;
  if (status === 413) return { kind: "too-large", reason };
  if (RETRYABLE_HTTP.has(status)) {
    const afterMillis = parseRetryAfter(retryAfter, nowMillis);
    return afterMillis === undefined ? { kind: "retry", reason } : { kind: "retry", reason, afterMillis };
  }
  return { kind: "rejected", reason };
}

/** gRPC status codes the OTLP specification lists as retryable (RESOURCE_EXHAUSTED is message size below). */
const RETRYABLE_GRPC = new Set([
  1, // CANCELLED
  4, // DEADLINE_EXCEEDED
  10, // ABORTED
  11, // OUT_OF_RANGE
  14, // UNAVAILABLE
  15, // DATA_LOSS
]);
const RESOURCE_EXHAUSTED = 8;

export function grpcOutcome(code: number, details: string): SendOutcome {
  const reason = `gRPC status ${code}: ${details}`;
  if (RETRYABLE_GRPC.has(code)) return { kind: "retry", reason };
  // A receiver over its message size limit answers RESOURCE_EXHAUSTED (the collector's is 4 MiB).
  if (code === RESOURCE_EXHAUSTED) return /message|size|larger/i.test(details) ? { kind: "too-large", reason } : { kind: "retry", reason };
  return { kind: "rejected", reason };
}

/** No answer at all (refused, reset, timed out, name not resolved): the backend may come back. */
export function networkOutcome(error: Error): SendOutcome {
  const code = (error as NodeJS.ErrnoException).code;
  return { kind: "retry", reason: code !== undefined && !error.message.includes(code) ? `${code} ${error.message}` : error.message };
}

/** ExportLogsPartialSuccess as the SDK's deserializers give it (OTLP/JSON writes int64 as a string). */
export interface PartialSuccess {
  rejectedLogRecords?: number | string;
  errorMessage?: string;
}

/** A success response; its partial_success part, when present, counts records refused for good. */
export function deliveredOutcome(partial: PartialSuccess | undefined, batchSize: number): SendOutcome {
  const count = Number(partial?.rejectedLogRecords ?? 0);
  const rejected = Number.isFinite(count) ? Math.min(Math.max(0, Math.trunc(count)), batchSize) : 0;
  const message = partial?.errorMessage;
  return message ? { kind: "delivered", rejected, message } : { kind: "delivered", rejected };
}

/** Retry-After: delay-seconds or an HTTP date. Undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMillis: number): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMillis);
}
