/**
 * Spool lines: `CRC32HEX JSON\n`. JSON escapes every newline, so a line is a record; the
 * checksum tells a whole line from one torn by a crash or damaged on disk. The first line
 * of each segment is its header: the resource and scope its records belong to, written
 * once instead of on every line.
 */
import type { AnyValue, HrTime } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { crc32 } from "node:zlib";

type InstrumentationScope = ReadableLogRecord["instrumentationScope"];
type Attributes = ReadableLogRecord["attributes"];

export function encodeLine(value: unknown): Buffer {
  const json = JSON.stringify(value);
  return Buffer.from(`${crc32(json).toString(16).padStart(8, "0")} ${json}\n`);
}

/** The JSON value of one line (without its newline), or undefined when the checksum or JSON is wrong. */
export function decodeLine(line: string): unknown {
  if (line.length < 10 || line[8] !== " ") return undefined;
  const json = line.slice(9);
  if (crc32(json).toString(16).padStart(8, "0") !== line.slice(0, 8)) return undefined;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return undefined;
  }
}

interface HeaderJson {
  resource: Attributes;
  scope: InstrumentationScope;
}

export interface SegmentHeader {
  resource: ReadableLogRecord["resource"];
  scope: InstrumentationScope;
}

export function encodeHeader(record: ReadableLogRecord): Buffer {
  const { name, version, schemaUrl } = record.instrumentationScope;
  const header: HeaderJson = { resource: record.resource.attributes, scope: { name, version, schemaUrl } };
  return encodeLine(header);
}

/** Objects shared by all records of the segment: the OTLP encoder groups records by identity. */
export function decodeHeader(line: string): SegmentHeader | undefined {
  const value = decodeLine(line);
  if (!isObject(value) || !isObject(value.resource) || !isObject(value.scope) || typeof value.scope.name !== "string") return undefined;
  const header = value as unknown as HeaderJson;
  return { resource: resourceFromAttributes(header.resource), scope: header.scope };
}

/** What a log record needs to be exported again; its resource and scope are in the header. */
interface RecordJson {
  t: HrTime;
  o: HrTime;
  n?: number;
  s?: string;
  e?: string;
  b?: AnyValue;
  a: Attributes;
}

export function encodeRecord(record: ReadableLogRecord): Buffer {
  const json: RecordJson = {
    t: record.hrTime,
    o: record.hrTimeObserved,
    n: record.severityNumber,
    s: record.severityText,
    e: record.eventName,
    b: record.body,
    a: record.attributes,
  };
  return encodeLine(json);
}

export function decodeRecord(line: string, header: SegmentHeader): ReadableLogRecord | undefined {
  const json = decodeLine(line);
  if (!isObject(json) || !isHrTime(json.t) || !isHrTime(json.o) || !isObject(json.a)) return undefined;
  const value = json as unknown as RecordJson;
  return {
    hrTime: value.t,
    hrTimeObserved: value.o,
    severityNumber: value.n,
    severityText: value.s,
    eventName: value.e,
    body: value.b,
    attributes: value.a,
    resource: header.resource,
    instrumentationScope: header.scope,
    droppedAttributesCount: 0,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isHrTime(value: unknown): value is HrTime {
  return Array.isArray(value) && value.length === 2 && value.every(Number.isSafeInteger);
}
