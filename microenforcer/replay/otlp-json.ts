/**
 * OTLP/JSON log export requests (what the collector's file exporter writes, one
 * ExportLogsServiceRequest per line) flattened to plain records: attribute lists become
 * objects, AnyValues plain values, nanosecond strings milliseconds.
 */

export interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
  bytesValue?: string;
}

export interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}

export interface OtlpLogRecord {
  timeUnixNano?: string | number;
  observedTimeUnixNano?: string | number;
  eventName?: string;
  severityNumber?: number;
  severityText?: string;
  body?: OtlpAnyValue;
  attributes?: OtlpKeyValue[];
}

export interface OtlpLogsRequest {
  resourceLogs?: Array<{
    resource?: { attributes?: OtlpKeyValue[] };
    scopeLogs?: Array<{ logRecords?: OtlpLogRecord[] }>;
  }>;
}

/** One log record of a request, with its resource. Times are ms since the epoch (absent when the record had none). */
export interface FlatLogRecord {
  eventName: string | undefined;
  timeMs: number | undefined;
  observedTimeMs: number | undefined;
  severityNumber: number | undefined;
  severityText: string | undefined;
  body: unknown;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

export function isOtlpLogsRequest(value: unknown): value is OtlpLogsRequest {
  return typeof value === "object" && value !== null && Array.isArray((value as OtlpLogsRequest).resourceLogs);
}

export function flattenLogsRequest(request: OtlpLogsRequest): FlatLogRecord[] {
  return (request.resourceLogs ?? []).flatMap((resourceLogs) => {
    const resource = keyValues(resourceLogs.resource?.attributes);
    return (resourceLogs.scopeLogs ?? []).flatMap((scopeLogs) =>
      (scopeLogs.logRecords ?? []).map((record) => ({
        eventName: record.eventName,
        timeMs: nanosToMs(record.timeUnixNano),
        observedTimeMs: nanosToMs(record.observedTimeUnixNano),
        severityNumber: record.severityNumber,
        severityText: record.severityText,
        body: record.body === undefined ? undefined : anyValue(record.body),
        attributes: keyValues(record.attributes),
        resource,
      })),
    );
  });
}

/** 0 means unset in OTLP. Nanoseconds past 2^53 lose precision as numbers: cut to ms in BigInt. */
function nanosToMs(nanos: string | number | undefined): number | undefined {
  if (nanos === undefined) return undefined;
  let ms: number;
  try {
    ms = Number(BigInt(nanos) / 1_000_000n);
  } catch {
    return undefined;
  }
  return ms === 0 ? undefined : ms;
}

function keyValues(list: OtlpKeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, value === undefined ? undefined : anyValue(value)]));
}

/** OTLP/JSON writes int64 as strings; our integers (PIDs, ports, counts) fit a number. */
function anyValue(value: OtlpAnyValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(anyValue);
  if (value.kvlistValue !== undefined) return keyValues(value.kvlistValue.values);
  return value.bytesValue;
}
