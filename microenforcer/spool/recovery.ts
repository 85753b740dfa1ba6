/**
 * What a previous run left in the spool directory, made whole before anything is read or
 * written: segments the cursor says were consumed are removed (a crash may have come
 * between writing the cursor and unlinking them), a torn last line is cut off each kept
 * segment (a crash mid-write), and the records still to deliver are counted. The plan is
 * the pure recoveryPlan (segments.ts); this is its I/O.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readdirSync, readSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { NEWLINE, parseSegmentName, READ_CHUNK, recoveryPlan, segmentName, type Cursor } from "./segments.ts";

export interface Recovery {
  /** Segments kept, oldest first, with the bytes of their whole lines. */
  segments: Array<{ number: number; size: number }>;
  /** Where reading starts (within what is kept). */
  start: Cursor;
  /** The first number a new segment may take. */
  nextSegment: number;
  /** Records after `start`. */
  records: number;
  /** Segments whose last line was torn (cut off, or the segment removed when not even its header was whole). */
  torn: number;
}

/** `cursor`: what the cursor file says, undefined when absent or damaged (then everything is replayed). */
export function recover(dir: string, cursor: Cursor | undefined): Recovery {
  const path = (number: number): string => join(dir, segmentName(number));
  const numbers = readdirSync(dir).flatMap((name) => parseSegmentName(name) ?? []);
  const plan = recoveryPlan(numbers, cursor);
  for (const number of plan.remove) unlinkSync(path(number));
  const segments: Recovery["segments"] = [];
  let torn = 0;
  for (const number of plan.keep) {
    const repaired = repairTail(path(number));
    if (repaired.torn) torn++;
    if (repaired.size !== undefined) segments.push({ number, size: repaired.size });
  }
  const first = segments.find((s) => s.number === plan.start.segment);
  const start = { segment: plan.start.segment, offset: Math.min(plan.start.offset, first?.size ?? 0) };
  const records = segments.reduce((count, s) => count + countRecords(path(s.number), s.size, s.number === start.segment ? start.offset : 0), 0);
  return { segments, start, nextSegment: plan.nextSegment, records, torn };
}

/** Records in a segment from `from` on: its lines, less the header when counting from the start. */
function countRecords(path: string, size: number, from: number): number {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    let lines = 0;
    for (let at = from; at < size; ) {
      const got = readSync(fd, buffer, 0, Math.min(READ_CHUNK, size - at), at);
      if (got === 0) break;
      for (let i = buffer.indexOf(NEWLINE); i >= 0 && i < got; i = buffer.indexOf(NEWLINE, i + 1)) lines++;
      at += got;
    }
    return from === 0 ? Math.max(0, lines - 1) : lines;
  } finally {
    closeSync(fd);
  }
}

/**
 * Cuts a torn last line off a segment. `size` is what is kept; undefined when not even the
 * header survived, and the segment is removed.
 */
function repairTail(path: string): { size: number | undefined; torn: boolean } {
  const fd = openSync(path, constants.O_RDWR);
  let size: number;
  try {
    size = fstatSync(fd).size;
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    for (let end = size; end > 0; ) {
      const start = Math.max(0, end - READ_CHUNK);
      const got = readSync(fd, buffer, 0, end - start, start);
      const newline = buffer.subarray(0, got).lastIndexOf(NEWLINE);
      if (newline >= 0) {
        const keep = start + newline + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return { size: keep, torn: keep < size };
      }
      end = start;
    }
  } finally {
    closeSync(fd);
  }
  unlinkSync(path);
  return { size: undefined, torn: size > 0 };
}
