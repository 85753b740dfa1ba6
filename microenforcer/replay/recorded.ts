/**
 * Records read back from what the sensor wrote: a line of `watch --format json` stdout
 * (one record), or a line of the collector's file exporter (one OTLP/JSON request, any
 * number of records). Lines that are neither (a sidecar's stderr merged in by
 * `kubectl logs`, a torn last line) are reported, never guessed at.
 */
import { flattenLogsRequest, isOtlpLogsRequest } from "./otlp-json.ts";

export interface RecordedRecord {
  eventName: string;
  /** When the sensor saw it (observedTimestamp), ms since the epoch. */
  observedMs: number;
  body: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

export type LineReading = { records: RecordedRecord[] } | { skipped: string };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

export function readRecordLine(line: string): LineReading {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { skipped: "not JSON" };
  }
  if (isOtlpLogsRequest(value)) {
    const records: RecordedRecord[] = [];
    for (const r of flattenLogsRequest(value)) {
      const observedMs = r.observedTimeMs ?? r.timeMs;
      if (r.eventName === undefined || observedMs === undefined) continue;
      records.push({ eventName: r.eventName, observedMs, body: typeof r.body === "string" ? r.body : "", attributes: r.attributes, resource: r.resource });
    }
    return { records };
  }
  if (isObject(value) && typeof value.eventName === "string" && isObject(value.attributes)) {
    const observedMs = Date.parse(String(value.observedTimestamp ?? value.timestamp));
    if (Number.isNaN(observedMs)) return { skipped: "a record without a valid observedTimestamp" };
    return {
      records: [
        {
          eventName: value.eventName,
          observedMs,
          body: typeof value.body === "string" ? value.body : "",
          attributes: value.attributes,
          resource: isObject(value.resource) ? value.resource : {},
        },
      ],
    };
  }
  return { skipped: "JSON, but neither a microenforcer record nor an OTLP logs request" };
}
