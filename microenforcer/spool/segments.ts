/**
 * The spool directory's layout and what to do with it after a restart, as pure functions.
 *
 * Segments are `NNNNNNNNNNNNNNNN.seg`, numbered upwards and never reused, read oldest first.
 * The cursor file says how far the backend has acknowledged: a segment number and a byte
 * offset in it. Acknowledging writes the cursor first and unlinks consumed segments after,
 * so any segment numbered below the cursor's is consumed, even when a crash came between.
 */
import { crc32 } from "node:zlib";

export const CURSOR_FILE = "cursor";
/** Segment files are read this much at a time. */
export const READ_CHUNK = 256 << 10;
/** Lines end with it (JSON escapes every other newline). */
export const NEWLINE = 0x0a;
const SEGMENT = /^(\d{16})\.seg$/;

export function segmentName(segment: number): string {
  return `${String(segment).padStart(16, "0")}.seg`;
}

export function parseSegmentName(name: string): number | undefined {
  const match = SEGMENT.exec(name);
  return match ? Number(match[1]) : undefined;
}

export interface Cursor {
  segment: number;
  offset: number;
}

/** Fixed length, so an update is one small pwrite at offset 0 over the previous one. */
const CURSOR_BYTES = 48;

export function encodeCursor(cursor: Cursor): Buffer {
  const text = `${segmentName(cursor.segment).slice(0, 16)} ${String(cursor.offset).padStart(16, "0")}`;
  return Buffer.from(`${text} ${crc32(text).toString(16).padStart(8, "0")}`.padEnd(CURSOR_BYTES - 1) + "\n");
}

/** Undefined when absent, torn or damaged: then the spool is replayed from its first segment (duplicates, never losses). */
export function decodeCursor(bytes: Buffer): Cursor | undefined {
  const match = /^(\d{16}) (\d{16}) ([0-9a-f]{8})/.exec(bytes.toString("latin1"));
  if (!match || crc32(`${match[1]} ${match[2]}`).toString(16).padStart(8, "0") !== match[3]) return undefined;
  return { segment: Number(match[1]), offset: Number(match[2]) };
}

export interface RecoveryPlan {
  /** Consumed before the restart: unlink. */
  remove: number[];
  /** Still to be delivered, in order. */
  keep: number[];
  /** Where reading starts. */
  start: Cursor;
  /** The first number a new segment may take. */
  nextSegment: number;
}

export function recoveryPlan(segments: readonly number[], cursor: Cursor | undefined): RecoveryPlan {
  const sorted = [...segments].sort((a, b) => a - b);
  const remove = cursor === undefined ? [] : sorted.filter((segment) => segment < cursor.segment);
  const keep = sorted.filter((segment) => !remove.includes(segment));
  const first = keep[0];
  const start =
    cursor !== undefined && first === cursor.segment ? cursor : { segment: first ?? cursor?.segment ?? 1, offset: 0 };
  const nextSegment = Math.max(0, ...sorted, cursor?.segment ?? 0) + 1;
  return { remove, keep, start, nextSegment };
}
